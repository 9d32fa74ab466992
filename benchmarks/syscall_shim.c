/* An LD_PRELOAD shim for benchmarks/syscall_timing.py: times the socket and signal-mask
 * calls one thread makes while it is switched on.
 *
 * Built by the script: gcc -O2 -shared -fPIC -o syscall_shim.so syscall_shim.c -ldl
 *
 * shim_switch(1) starts a window in the calling thread, shim_switch(0) ends it; calls of
 * send/sendto, recv/recvfrom, select/poll and pthread_sigmask made inside windows add their
 * count and their time (CLOCK_MONOTONIC, as Python's time.monotonic_ns) to totals, which
 * shim_read copies out; shim_read also gives when the window's first call began and its
 * last call ended, so that the caller can tell the time before and after them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>

enum { SEND, RECV, WAIT, SIGMASK, KINDS };

static __thread int on;
static long long total_ns[KINDS];
static long long calls[KINDS];
static long long first_start, last_end;

static long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *real(const char *name) { return dlsym(RTLD_NEXT, name); }

static void count(int kind, long long start) {
    long long end = now();
    total_ns[kind] += end - start;
    calls[kind] += 1;
    if (!first_start) first_start = start;
    last_end = end;
}

/* Runs CALL, timed as KIND when this thread's window is open; its result in `result`. */
#define TIMED(kind, type, call) \
    do { \
        if (!on) return call; \
        long long start = now(); \
        type result = call; \
        count(kind, start); \
        return result; \
    } while (0)

ssize_t send(int fd, const void *buf, size_t n, int flags) {
    static ssize_t (*f)(int, const void *, size_t, int);
    if (!f) f = real("send");
    TIMED(SEND, ssize_t, f(fd, buf, n, flags));
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to,
               socklen_t len) {
    static ssize_t (*f)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    if (!f) f = real("sendto");
    TIMED(SEND, ssize_t, f(fd, buf, n, flags, to, len));
}

ssize_t recv(int fd, void *buf, size_t n, int flags) {
    static ssize_t (*f)(int, void *, size_t, int);
    if (!f) f = real("recv");
    TIMED(RECV, ssize_t, f(fd, buf, n, flags));
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *from,
                 socklen_t *len) {
    static ssize_t (*f)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    if (!f) f = real("recvfrom");
    TIMED(RECV, ssize_t, f(fd, buf, n, flags, from, len));
}

int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout) {
    static int (*f)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    if (!f) f = real("select");
    TIMED(WAIT, int, f(n, r, w, e, timeout));
}

int poll(struct pollfd *fds, nfds_t n, int timeout) {
    static int (*f)(struct pollfd *, nfds_t, int);
    if (!f) f = real("poll");
    TIMED(WAIT, int, f(fds, n, timeout));
}

int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
    static int (*f)(int, const sigset_t *, sigset_t *);
    if (!f) f = real("pthread_sigmask");
    TIMED(SIGMASK, int, f(how, set, old));
}

void shim_switch(int value) {
    if (value) first_start = last_end = 0;
    on = value;
}

/* out: total_ns[KINDS], calls[KINDS], first_start, last_end */
void shim_read(long long *out) {
    memcpy(out, total_ns, sizeof total_ns);
    memcpy(out + KINDS, calls, sizeof calls);
    out[2 * KINDS] = first_start;
    out[2 * KINDS + 1] = last_end;
}
