#ifndef NBDTAP_CMAPGUARD_H
#define NBDTAP_CMAPGUARD_H

#include <stddef.h>
#include <stdint.h>

/* A guard for reading a file through mmap(2) while another process may shrink it.
   Touching a mapped page wholly past the file's new end raises SIGBUS, which would kill
   the reader; with a window registered here, the handler maps a page of zeros over the
   faulting page instead, notes the address, and lets the read go on, so the reader can
   stop at the next check with a message and the results it has.

   Faults outside every registered window go to the handler that was there before (or to
   the default action), so real crashes stay crashes. */

/* A slot for one reader's window, or -1 when all are taken (then nothing is guarded).
   The first call installs the SIGBUS handler. */
int nbdtap_map_guard_acquire(void);

/* The window of `slot` is now `length` bytes at `start` (length 0: no window). Call it
   with 0 before unmapping. */
void nbdtap_map_guard_set(int slot, const void *start, size_t length);

/* The first faulting address in `slot`'s window since it was acquired, or 0. */
uintptr_t nbdtap_map_guard_fault(int slot);

/* Gives the slot back. */
void nbdtap_map_guard_release(int slot);

#endif
