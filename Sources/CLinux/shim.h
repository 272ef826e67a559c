#ifndef S3CACHE_CLINUX_SHIM_H
#define S3CACHE_CLINUX_SHIM_H
/*
 * Linux and glibc interfaces that Swift's Glibc module does not export: malloc_trim
 * (malloc.h), epoll (sys/epoll.h), getrandom (sys/random.h), and accept4 and ppoll, which glibc declares only under
 * _GNU_SOURCE. Those two are declared here with untyped pointers rather than by including
 * sys/socket.h and poll.h: a second textual copy of those headers in this module would take
 * their declarations (SOCK_STREAM, struct pollfd) away from Swift files that import Glibc only.
 */
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/random.h>

/* accept4(2): struct sockaddr *, socklen_t * */
extern int accept4(int fd, void *address, void *length, int flags);
/* ppoll(2): struct pollfd *, nfds_t, const struct timespec *, const sigset_t * */
extern int ppoll(void *fds, unsigned long nfds, const void *timeout, const void *sigmask);
#endif
