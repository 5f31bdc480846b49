#ifndef NBDTAP_CSPLICE_H
#define NBDTAP_CSPLICE_H

#include <stddef.h>
#include <sys/types.h>

/* Linux's splice(2), tee(2), pipe2(2) and pipe sizing, which glibc declares only under
   _GNU_SOURCE, so Swift's Glibc module does not show them. */

/* splice(2) with SPLICE_F_MOVE | SPLICE_F_NONBLOCK and no offsets (sockets and pipes). */
ssize_t nbdtap_splice(int from, int to, size_t length);

/* tee(2) with SPLICE_F_NONBLOCK: duplicates up to `length` bytes at the head of pipe `from`
   into pipe `to`, leaving them in `from`. */
ssize_t nbdtap_tee(int from, int to, size_t length);

/* A non-blocking, close-on-exec pipe; 0 or -1 (errno set). */
int nbdtap_pipe(int fds[2]);

/* Asks for a pipe of `size` bytes; returns the size it has (or -1). */
int nbdtap_pipe_size(int fd, int size);

#endif
