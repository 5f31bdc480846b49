#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "csplice.h"

ssize_t nbdtap_splice(int from, int to, size_t length) {
    return splice(from, NULL, to, NULL, length, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
}

ssize_t nbdtap_tee(int from, int to, size_t length) {
    return tee(from, to, length, SPLICE_F_NONBLOCK);
}

int nbdtap_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
}

int nbdtap_pipe_size(int fd, int size) {
    /* Refused (over pipe-max-size): the pipe keeps the size it has, which is returned. */
    (void)fcntl(fd, F_SETPIPE_SZ, size);
    return fcntl(fd, F_GETPIPE_SZ);
}
