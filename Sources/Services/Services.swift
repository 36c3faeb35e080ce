// Services: work in progress.
