/*
 * scheduler: runs a kernel's grid on the calling CPU thread. Each CUDA thread
 * of a block is a fiber; blocks run one after another.
 *
 * A round runs every runnable fiber until it reaches __syncthreads, a warp
 * exchange (a shuffle or __syncwarp) or its end. Then each warp whose
 * waiting lanes all name each other in the same mask exchanges values and
 * goes on; when no warp can, and every live thread waits at the same
 * __syncthreads, the barrier opens. Anything else is an error a GPU would
 * not report as such (a barrier that exited threads never reach, barriers
 * at two places, a mask naming a lane that is elsewhere or gone), reported
 * here as a launch failure naming the kernel, block, lanes and lines.
 *
 * A thread runs on a stack of its own only from its first wait on: one that
 * ends without waiting leaves its stack to the next thread of the round,
 * so an element-wise kernel costs a function call per thread.
 *
 * CUDA_EMU_SCHEDULE=forward (default) | reverse | random:SEED sets the order
 * of the blocks and of the fibers in every round: with a barrier missing, a
 * shared-memory read then sees another thread's write or not, and the result
 * changes with the order.
 */
#include "emu.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define LM_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LM_EMU_ASAN 1
#endif
#endif
#ifdef LM_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* Every __shared__ variable of every kernel (cuda_emu.h puts them there). */
extern char __start_lm_emu_shared[] __attribute__((weak));
extern char __stop_lm_emu_shared[] __attribute__((weak));

/* Context switch (x86-64 System V): the callee-saved registers on the old
 * stack, the stack pointer saved, the new one loaded, its registers popped. */
extern "C" void lm_emu_swap(void **save_sp, void *load_sp);
asm(R"(
.text
.globl lm_emu_swap
.type lm_emu_swap,@function
lm_emu_swap:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size lm_emu_swap,.-lm_emu_swap
)");

namespace lm_emu {

uint3 *cur_tid;
uint3 block_idx;
dim3 block_dim, grid_dim;

namespace {

enum state_t { NEW, RUN, AT_WARP, AT_BAR, DONE };

struct fiber {
    void *sp = nullptr;      /* where it stopped (RUN after a wait, AT_*) */
    char *stack = nullptr;   /* its stack while it has one */
    uint3 tid;
    int lane = 0;
    state_t state = DONE;
    unsigned mask = 0;
    int src = 0;
    uint64_t val = 0, res = 0;
    const char *site = "";
};

#ifdef LM_EMU_ASAN
const size_t STACK_BYTES = 512 * 1024;
#else
const size_t STACK_BYTES = 128 * 1024;
#endif

/* All of this is used under exec_lock() only: one grid runs at a time. */
std::vector<fiber> fibers;
std::vector<char *> free_stacks;
fiber *cur;
void *sched_sp, *discard_sp;
const grid_job *job;
std::vector<unsigned char> dyn_shared;
bool waited; /* a thread of this grid has waited at a barrier or exchange */
int waits;   /* threads that stopped to wait in this round */

enum order_t { FORWARD, REVERSE, RANDOM };
order_t order;
unsigned long long rng;

void read_schedule() {
    static bool done;
    if (done) return;
    done = true;
    const char *e = getenv("CUDA_EMU_SCHEDULE");
    order = FORWARD;
    if (e && !strcmp(e, "reverse")) order = REVERSE;
    else if (e && !strncmp(e, "random:", 7)) {
        order = RANDOM;
        rng = strtoull(e + 7, nullptr, 10) * 2654435761ull + 88172645463325252ull;
    } else if (e && *e && strcmp(e, "forward")) {
        report("CUDA_EMU_SCHEDULE=%s: expected forward, reverse or random:SEED", e);
        exit(2);
    }
}

unsigned next_rand() {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)rng;
}

/* The order of n items for this round: as they come, reversed, or shuffled. */
void arrange(std::vector<int> &perm, int n) {
    perm.resize(n);
    for (int i = 0; i < n; i++) perm[i] = order == REVERSE ? n - 1 - i : i;
    if (order == RANDOM)
        for (int i = n - 1; i > 0; i--) std::swap(perm[i], perm[next_rand() % (unsigned)(i + 1)]);
}

char *take_stack() {
    if (!free_stacks.empty()) {
        char *s = free_stacks.back();
        free_stacks.pop_back();
        return s;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = (char *)mmap(nullptr, STACK_BYTES + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        perror("cuda-emu: mmap");
        abort();
    }
    mprotect(m, page, PROT_NONE); /* an overflow faults instead of writing into the next stack */
    return m + page;
}

extern "C" void lm_emu_fiber_entry();

/* A fresh stack for f, set to enter lm_emu_fiber_entry. */
void give_stack(fiber &f) {
    f.stack = take_stack();
#ifdef LM_EMU_ASAN
    __asan_unpoison_memory_region(f.stack, STACK_BYTES); /* frames a thread left when it switched away for good */
#endif
    void **sp = (void **)(((uintptr_t)f.stack + STACK_BYTES) & ~(uintptr_t)15);
    *--sp = nullptr;                             /* the entry's return address slot: rsp = 8 mod 16 there */
    *--sp = (void *)&lm_emu_fiber_entry;         /* where lm_emu_swap's ret goes */
    for (int i = 0; i < 6; i++) *--sp = nullptr; /* rbp rbx r12-r15 */
    f.sp = sp;
}

/* The round in progress: perm[round_next ..] are still to run. A thread that
 * stops passes control straight to the next one (one stack switch per stop,
 * not two); the last goes back to the scheduler. */
std::vector<int> perm;
int round_next, round_n;

fiber *next_runnable() {
    while (round_next < round_n) {
        fiber *f = &fibers[perm[round_next++]];
        if (f->state == RUN || f->state == NEW) return f;
    }
    return nullptr;
}

#ifdef LM_EMU_ASAN
/* The scheduler's stack: the calling thread's, for AddressSanitizer's fiber annotations. */
void scheduler_stack(const void **bottom, size_t *size) {
    static thread_local void *b;
    static thread_local size_t n;
    if (!b) {
        pthread_attr_t a;
        pthread_getattr_np(pthread_self(), &a);
        pthread_attr_getstack(&a, &b, &n);
        pthread_attr_destroy(&a);
    }
    *bottom = b;
    *size = n;
}
#endif

/* Saves the running context in *save and resumes `to` (the scheduler when
 * null); a NEW thread gets a stack first. */
void switch_stack(void **save, fiber *to, bool finished) {
    if (to && to->state == NEW) {
        give_stack(*to);
        to->state = RUN;
    }
#ifdef LM_EMU_ASAN
    const void *bottom = to ? to->stack : nullptr;
    size_t size = STACK_BYTES;
    if (!to) scheduler_stack(&bottom, &size);
    void *fake = nullptr;
    __sanitizer_start_switch_fiber(finished ? nullptr : &fake, bottom, size);
#else
    (void)finished;
#endif
    if (to) {
        cur = to;
        cur_tid = &to->tid;
    }
    lm_emu_swap(save, to ? to->sp : sched_sp);
#ifdef LM_EMU_ASAN
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

/* The running thread waits: on to the next of the round. */
void wait_here() {
    waited = true;
    waits++;
    switch_stack(&cur->sp, next_runnable(), false);
}

/* Every stack starts here, and runs threads until one of them waits: each
 * that ends hands the stack to the next thread of the round if that one is
 * NEW, else the stack goes back to the pool. */
extern "C" void lm_emu_fiber_entry() {
#ifdef LM_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    for (;;) {
        job->body(job->ctx);
        cur->state = DONE;
        char *stack = cur->stack;
        cur->stack = nullptr;
        fiber *next = next_runnable();
        if (next && next->state == NEW) {
            next->stack = stack;
            next->state = RUN;
            cur = next;
            cur_tid = &next->tid;
            continue;
        }
        free_stacks.push_back(stack); /* reused only after the switch below: nothing runs in between */
        switch_stack(&discard_sp, next, true);
        abort(); /* a finished stack is never resumed */
    }
}

const char *where() {
    static char buf[160];
    snprintf(buf, sizeof buf, "%s block (%u,%u,%u)", job->kernel, block_idx.x, block_idx.y, block_idx.z);
    return buf;
}

/* The warp starting at fiber `base` with `lanes` lanes: exchanges values if
 * its waiting lanes can; 1 if they did, 0 if none waits, -1 on an error. */
int resolve_warp(int base, int lanes) {
    unsigned masks[32], waiting[32]; /* each distinct mask, and the lanes waiting with it */
    int n_masks = 0;
    for (int l = 0; l < lanes; l++) {
        fiber &f = fibers[base + l];
        if (f.state != AT_WARP) continue;
        int i = 0;
        while (i < n_masks && masks[i] != f.mask) i++;
        if (i == n_masks) { masks[n_masks] = f.mask; waiting[n_masks++] = 0; }
        waiting[i] |= 1u << l;
    }
    if (n_masks == 0) return 0;
    unsigned present = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    for (int i = 0; i < n_masks; i++) {
        unsigned m = masks[i], missing = m & ~waiting[i];
        if (waiting[i] & ~m) {
            int l = __builtin_ctz(waiting[i] & ~m);
            report("%s: lane %d of warp %d calls a warp exchange at %s with mask 0x%08x, which leaves the lane itself out", where(), l,
                   base / 32, fibers[base + l].site, m);
            return -1;
        }
        if (missing) {
            int l = __builtin_ctz(waiting[i]), o = __builtin_ctz(missing);
            const char *why = !(present >> o & 1u)           ? "does not exist (a partial warp)"
                              : fibers[base + o].state == DONE   ? "has exited"
                              : fibers[base + o].state == AT_BAR ? "waits at a __syncthreads"
                                                                 : "waits with another mask";
            report("%s: warp %d: lane %d exchanges at %s with mask 0x%08x, but lane %d %s (%s)", where(), base / 32, l, fibers[base + l].site,
                   m, o, why, o < lanes ? fibers[base + o].site : "-");
            return -1;
        }
    }
    for (int l = 0; l < lanes; l++) {
        fiber &f = fibers[base + l];
        if (f.state != AT_WARP) continue;
        int s = f.src;
        f.res = s >= 0 && s < 32 && (f.mask >> s & 1u) ? fibers[base + s].val : ~0ull; /* from a lane outside the mask: undefined */
    }
    for (int l = 0; l < lanes; l++)
        if (fibers[base + l].state == AT_WARP) fibers[base + l].state = RUN;
    return 1;
}

/* Opens the barrier if every live thread waits at the same one. */
bool open_barrier(int n) {
    int at_bar = 0, done = 0, first = -1, other = -1;
    for (int i = 0; i < n; i++) {
        if (fibers[i].state == DONE) { done++; continue; }
        at_bar++;
        if (first < 0) first = i;
        else if (other < 0 && fibers[i].site != fibers[first].site && strcmp(fibers[i].site, fibers[first].site) != 0) other = i;
    }
    if (done) {
        report("%s: %d threads wait at __syncthreads (%s) that %d exited threads never reach (a barrier in divergent code)", where(),
               at_bar, fibers[first].site, done);
        return false;
    }
    if (other >= 0) {
        report("%s: threads wait at two different __syncthreads: thread %d at %s, thread %d at %s", where(), first, fibers[first].site,
               other, fibers[other].site);
        return false;
    }
    for (int i = 0; i < n; i++) fibers[i].state = RUN;
    return true;
}

/* Runs one block; false on an error (reported). Shared memory is filled
 * with 0xff first, unless no thread of the grid has waited yet after its
 * first block: an element-wise kernel then pays for one fill, not one per
 * block. */
bool run_block(int n, bool first) {
    for (int i = 0; i < n; i++) fibers[i].state = NEW;
    if (first || waited) {
        if (__start_lm_emu_shared) memset(__start_lm_emu_shared, 0xff, (size_t)(__stop_lm_emu_shared - __start_lm_emu_shared));
        if (!dyn_shared.empty()) memset(dyn_shared.data(), 0xff, dyn_shared.size());
    }
    for (;;) {
        if (order == RANDOM) arrange(perm, n);
        round_next = 0;
        round_n = n;
        waits = 0;
        if (fiber *f = next_runnable()) switch_stack(&sched_sp, f, false);
        if (waits == 0) return true; /* every thread ran to its end */
        /* nothing runs now: every thread waits or is done */
        bool moved = false;
        for (int base = 0; base < n; base += 32) {
            int r = resolve_warp(base, std::min(32, n - base));
            if (r < 0) return false;
            moved |= r > 0;
        }
        if (!moved && !open_barrier(n)) return false;
    }
}

/* After a failed block: the stacks of the threads left waiting go back to the pool. */
void release_stacks() {
    for (auto &f : fibers)
        if (f.stack) {
            free_stacks.push_back(f.stack);
            f.stack = nullptr;
        }
}

} /* namespace */

int lane_id() { return cur->lane; }
void *dynamic_shared() { return dyn_shared.empty() ? nullptr : dyn_shared.data(); }

void syncthreads(const char *site) {
    cur->state = AT_BAR;
    cur->site = site;
    wait_here();
}

uint64_t warp_exchange(unsigned mask, uint64_t bits, int src_lane, const char *site) {
    cur->state = AT_WARP;
    cur->mask = mask;
    cur->val = bits;
    cur->src = src_lane;
    cur->site = site;
    wait_here();
    return cur->res;
}

cudaError_t run_grid(const grid_job &j) {
    read_schedule();
    job = &j;
    grid_dim = j.grid;
    block_dim = j.block;
    dyn_shared.assign(j.shmem, 0xff);
    waited = false;
    int n = (int)(j.block.x * j.block.y * j.block.z);
    if ((int)fibers.size() < n) fibers.resize(n);
    for (int i = 0; i < n; i++) {
        fibers[i].tid = make_uint3(i % j.block.x, i / j.block.x % j.block.y, i / (j.block.x * j.block.y));
        fibers[i].lane = i % 32;
    }
    arrange(perm, n);
    size_t blocks = (size_t)j.grid.x * j.grid.y * j.grid.z;
    std::vector<int> order_of_blocks;
    if (order != FORWARD) arrange(order_of_blocks, (int)blocks);
    for (size_t b = 0; b < blocks; b++) {
        size_t i = order == FORWARD ? b : (size_t)order_of_blocks[b];
        block_idx = make_uint3((unsigned)(i % j.grid.x), (unsigned)(i / j.grid.x % j.grid.y), (unsigned)(i / ((size_t)j.grid.x * j.grid.y)));
        if (!run_block(n, b == 0)) {
            release_stacks();
            return cudaErrorLaunchFailure;
        }
    }
    return cudaSuccess;
}

int launch(const char *kernel, dim3 g, dim3 b, size_t shmem, cudaStream_t s, const void *const *ptrs, const int *ptr_index, int n_ptrs,
           void (*body)(void *), void (*release)(void *), void *ctx) {
    std::lock_guard<std::recursive_mutex> lock(exec_lock());
    int dev = current_device();
    unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    unsigned yz = (unsigned)grid_yz_limit();
    cudaError_t e = cudaSuccess;
    if (!g.x || !g.y || !g.z || !threads || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024 || g.x > 0x7fffffffu || g.y > yz ||
        g.z > yz) {
        report("%s: invalid launch: grid (%u,%u,%u), block (%u,%u,%u)", kernel, g.x, g.y, g.z, b.x, b.y, b.z);
        e = cudaErrorInvalidConfiguration;
    } else if (shmem > 48 * 1024) {
        report("%s: %zu bytes of dynamic shared memory (above 48 KiB needs cudaFuncSetAttribute)", kernel, shmem);
        e = cudaErrorInvalidValue;
    } else if (stream_device(s) != dev) {
        report("%s: launched on a stream of device %d while device %d is current", kernel, stream_device(s), dev);
        e = cudaErrorInvalidResourceHandle;
    }
    std::shared_ptr<void> call(ctx, release); /* freed once the grid has run, or its queue was discarded */
    if (e != cudaSuccess) {
        set_last_error(e);
        return -1;
    }
    /* A pointer the kernel cannot reach (host memory, another device's) faults when the grid runs. */
    for (int i = 0; i < n_ptrs; i++) {
        int owner = device_of(ptrs[i], 0);
        if (ptrs[i] && owner != dev) {
            report("%s: argument %d (%p) is %s, not memory of device %d: the grid would fault", kernel, ptr_index[i], ptrs[i],
                   owner < 0 ? "not device memory" : "another device's memory", dev);
            enqueue(s, [] { return cudaErrorIllegalAddress; });
            return 0;
        }
    }
    enqueue(s, [kernel, g, b, shmem, body, call, dev]() {
        count(dev, STAT_KERNELS, 1);
        return run_grid(grid_job{kernel, g, b, shmem, body, call.get()});
    });
    return 0;
}

} /* namespace lm_emu */
