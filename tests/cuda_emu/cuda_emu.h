/*
 * cuda_emu.h: what a kernel file needs to compile as C++ for the CPU
 * (tests/cuda_emu/README.md). nvcc-emu force-includes it before the file.
 *
 * The CUDA headers give the types (dim3, cudaStream_t, __half and
 * __nv_bfloat16 with NVIDIA's own host conversions); this adds the device
 * side: threadIdx and its friends per emulated thread, __shared__,
 * __syncthreads, warp shuffles, and the launch behind kernels/common.cuh's
 * LM_LAUNCH and LM_DYNAMIC_SHARED.
 */
#ifndef LM_CUDA_EMU_H
#define LM_CUDA_EMU_H

#define LM_CUDA_EMU 1

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

/* One __shared__ object per block: blocks run one at a time in the whole
 * process, so a static does. Its own section lets the scheduler fill every
 * __shared__ byte with 0xff (NaN, -1) before each block: as undefined as on
 * a GPU, and never the previous block's values. */
#undef __shared__
#define __shared__ static __attribute__((section("lm_emu_shared")))

namespace lm_emu {

/* the running thread's coordinates (set by the scheduler) */
extern uint3 *cur_tid;
extern uint3 block_idx;
extern dim3 block_dim, grid_dim;

void syncthreads(const char *site);
/* One lane's part of a warp exchange: returns lane src_lane's bits. */
uint64_t warp_exchange(unsigned mask, uint64_t bits, int src_lane, const char *site);
int lane_id();
void *dynamic_shared();

/* A launch: the pointer arguments (checked against the current device's
 * memory), then the grid queued on the stream; body(ctx) runs one thread and
 * release(ctx) frees ctx once the grid has run. */
int launch(const char *kernel, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream, const void *const *ptrs, const int *ptr_index,
           int n_ptrs, void (*body)(void *), void (*release)(void *), void *ctx);

template <class... P> struct launcher {
    void (*kernel)(P...);
    const char *name;
    dim3 grid, block;
    size_t shmem;
    cudaStream_t stream;

    struct call {
        void (*kernel)(P...);
        std::tuple<P...> args; /* converted to the parameter types, as a launch does */
    };

    template <class... A> void operator()(A &&...a) const {
        call *c = new call{kernel, std::tuple<P...>(std::forward<A>(a)...)};
        const void *ptrs[sizeof...(P) + 1];
        int index[sizeof...(P) + 1], n = 0, i = 0;
        std::apply([&](const auto &...x) { (collect(x, i++, ptrs, index, n), ...); }, c->args);
        launch(name, grid, block, shmem, stream, ptrs, index, n,
               [](void *p) { std::apply(((call *)p)->kernel, ((call *)p)->args); }, /* each thread its own copy of the parameters */
               [](void *p) { delete (call *)p; }, c);
    }
    template <class T> static void collect(const T &x, int i, const void **ptrs, int *index, int &n) {
        if constexpr (std::is_pointer_v<T>) {
            ptrs[n] = (const void *)x;
            index[n++] = i;
        }
    }
};

template <class... P>
launcher<P...> make_launcher(void (*kernel)(P...), const char *name, dim3 grid, dim3 block, size_t shmem, cudaStream_t stream) {
    return launcher<P...>{kernel, name, grid, block, shmem, stream};
}

template <class T> T shuffle(unsigned mask, T v, int src, const char *site) {
    static_assert(sizeof(T) <= 8, "a shuffle of a type wider than 8 bytes");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    b = warp_exchange(mask, b, src, site);
    T r;
    std::memcpy(&r, &b, sizeof(T));
    return r;
}

} /* namespace lm_emu */

#define LM_LAUNCH(kernel, grid, block, shmem, stream) lm_emu::make_launcher(kernel, #kernel, grid, block, shmem, stream)
#define LM_DYNAMIC_SHARED(type, name) type *name = (type *)lm_emu::dynamic_shared()

#define threadIdx (*lm_emu::cur_tid)
#define blockIdx (lm_emu::block_idx)
#define blockDim (lm_emu::block_dim)
#define gridDim (lm_emu::grid_dim)
#ifndef warpSize
#define warpSize 32
#endif

#define LM_EMU_STR2(x) #x
#define LM_EMU_STR(x) LM_EMU_STR2(x)
#define LM_EMU_SITE __FILE__ ":" LM_EMU_STR(__LINE__)

/* The source line of every barrier and shuffle, for the scheduler's reports. */
#define __syncthreads() lm_emu::syncthreads(LM_EMU_SITE)
#define __syncwarp(...) ((void)lm_emu::warp_exchange(lm_emu_mask_or_all(__VA_ARGS__), 0, lm_emu::lane_id(), LM_EMU_SITE))
#define __shfl_sync(mask, v, src, ...) lm_emu_shfl_idx(mask, v, src, LM_EMU_SITE, ##__VA_ARGS__)
#define __shfl_xor_sync(mask, v, lane_mask, ...) lm_emu_shfl_xor(mask, v, lane_mask, LM_EMU_SITE, ##__VA_ARGS__)
#define __shfl_down_sync(mask, v, delta, ...) lm_emu_shfl_down(mask, v, delta, LM_EMU_SITE, ##__VA_ARGS__)
#define __shfl_up_sync(mask, v, delta, ...) lm_emu_shfl_up(mask, v, delta, LM_EMU_SITE, ##__VA_ARGS__)

static inline unsigned lm_emu_mask_or_all(unsigned mask = 0xffffffffu) { return mask; }

/* Lanes are numbered within segments of `width` lanes; a source outside the
 * caller's segment gives the caller's own value, as the hardware does. */
template <class T> static inline T lm_emu_shfl_idx(unsigned mask, T v, int src, const char *site, int width = 32) {
    int lane = lm_emu::lane_id();
    return lm_emu::shuffle(mask, v, (lane / width) * width + (src % width), site);
}
template <class T> static inline T lm_emu_shfl_xor(unsigned mask, T v, int lane_mask, const char *site, int width = 32) {
    int lane = lm_emu::lane_id(), src = lane ^ lane_mask;
    if (src >= (lane / width + 1) * width) src = lane;
    return lm_emu::shuffle(mask, v, src, site);
}
template <class T> static inline T lm_emu_shfl_down(unsigned mask, T v, unsigned delta, const char *site, int width = 32) {
    int lane = lm_emu::lane_id(), src = lane + (int)delta;
    if (src >= (lane / width + 1) * width) src = lane;
    return lm_emu::shuffle(mask, v, src, site);
}
template <class T> static inline T lm_emu_shfl_up(unsigned mask, T v, unsigned delta, const char *site, int width = 32) {
    int lane = lm_emu::lane_id(), src = lane - (int)delta;
    if (src < (lane / width) * width) src = lane;
    return lm_emu::shuffle(mask, v, src, site);
}

/* device-only math that the C library lacks */
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

#endif
