#include <mosquitto.h>
#include <mqtt_protocol.h>
// The event loop that drives libmosquitto clients (MQTT target) waits with
// epoll and wakes with an eventfd; Swift's Glibc module does not export these.
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <pthread.h>

/// Names the calling thread (`top -H`, `perf`); glibc declares it only under _GNU_SOURCE.
extern int pthread_setname_np(pthread_t thread, const char *name);
static inline int kpm_name_current_thread(const char *name) {
    return pthread_setname_np(pthread_self(), name);
}
