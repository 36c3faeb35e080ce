// MQTT: work in progress.
