#include <mosquitto.h>
#include <mqtt_protocol.h>
// The event loop that drives libmosquitto clients (MQTT target) waits with
// epoll and wakes with an eventfd; Swift's Glibc module does not export these.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

/// Names the calling thread (`top -H`, `perf`); glibc declares it only under _GNU_SOURCE.
extern int pthread_setname_np(pthread_t thread, const char *name);
static inline int kpm_name_current_thread(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}

/// Waits for input on `fds` for at most `nanoseconds` (poll(2) counts whole
/// milliseconds; the event loop's coalescing waits are shorter). glibc
/// declares ppoll only under _GNU_SOURCE.
extern int ppoll(struct pollfd *fds, nfds_t nfds, const struct timespec *timeout, const sigset_t *sigmask);
static inline int kpm_poll_nanoseconds(struct pollfd *fds, nfds_t count, long long nanoseconds) {
    struct timespec timeout = { (time_t)(nanoseconds / 1000000000), (long)(nanoseconds % 1000000000) };
    return ppoll(fds, count, &timeout, NULL);
}
