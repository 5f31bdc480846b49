#include "cmapguard.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Enough for every reader one process runs at once (a decode has one; the test suite a
   few in parallel); past it, windows are simply not guarded. */
#define NBDTAP_MAP_GUARD_SLOTS 64

static atomic_int used[NBDTAP_MAP_GUARD_SLOTS];
static atomic_uintptr_t window_start[NBDTAP_MAP_GUARD_SLOTS];
static atomic_size_t window_length[NBDTAP_MAP_GUARD_SLOTS];
static atomic_uintptr_t fault_address[NBDTAP_MAP_GUARD_SLOTS];

static struct sigaction previous;
static uintptr_t page_size = 4096;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

/* Hands a fault that is not ours on as if this handler were not there. */
static void pass_on(int signal_number, siginfo_t *info, void *context) {
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction != NULL) {
            previous.sa_sigaction(signal_number, info, context);
            return;
        }
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(signal_number);
        return;
    }
    /* Default action: restore it and return, so the faulting access faults again and
       the process dies of SIGBUS as it would have without the guard. */
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(signal_number, &fallback, NULL);
}

static void on_bus_error(int signal_number, siginfo_t *info, void *context) {
    uintptr_t address = (uintptr_t)info->si_addr;
    if (info->si_code == BUS_ADRERR) {
        for (int slot = 0; slot < NBDTAP_MAP_GUARD_SLOTS; slot++) {
            if (!atomic_load(&used[slot])) continue;
            uintptr_t start = atomic_load(&window_start[slot]);
            size_t length = atomic_load(&window_length[slot]);
            if (length == 0 || address < start || address - start >= length) continue;
            void *page = (void *)(address & ~(page_size - 1));
            /* mmap is a plain system call on Linux, safe here in practice. */
            void *zeros = mmap(page, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
            if (zeros == MAP_FAILED) break;
            uintptr_t none = 0;
            atomic_compare_exchange_strong(&fault_address[slot], &none, address);
            return;
        }
    }
    pass_on(signal_number, info, context);
}

static void install(void) {
    long size = sysconf(_SC_PAGESIZE);
    if (size > 0) page_size = (uintptr_t)size;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_bus_error;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &previous);
}

int nbdtap_map_guard_acquire(void) {
    pthread_once(&install_once, install);
    for (int slot = 0; slot < NBDTAP_MAP_GUARD_SLOTS; slot++) {
        int free_slot = 0;
        if (atomic_compare_exchange_strong(&used[slot], &free_slot, 1)) {
            atomic_store(&window_length[slot], 0);
            atomic_store(&window_start[slot], 0);
            atomic_store(&fault_address[slot], 0);
            return slot;
        }
    }
    return -1;
}

void nbdtap_map_guard_set(int slot, const void *start, size_t length) {
    if (slot < 0 || slot >= NBDTAP_MAP_GUARD_SLOTS) return;
    atomic_store(&window_length[slot], 0);
    atomic_store(&window_start[slot], (uintptr_t)start);
    atomic_store(&window_length[slot], length);
}

uintptr_t nbdtap_map_guard_fault(int slot) {
    if (slot < 0 || slot >= NBDTAP_MAP_GUARD_SLOTS) return 0;
    return atomic_load(&fault_address[slot]);
}

void nbdtap_map_guard_release(int slot) {
    if (slot < 0 || slot >= NBDTAP_MAP_GUARD_SLOTS) return;
    atomic_store(&window_length[slot], 0);
    atomic_store(&used[slot], 0);
}
