#pragma once
/// @file workspace.hpp
/// Reusable scratch buffers for the kernels, so that steady-state calls do not allocate.
///
/// Each thread owns a small table of growable buffers indexed by a slot number. A buffer only
/// grows (to the largest size ever requested on that thread and slot) and is freed when the
/// thread exits. Buffers are 64-byte aligned. Contents are unspecified on return (not zeroed, and
/// not preserved when the buffer grows).
///
/// Rules for callers:
/// - A slot is owned by one kernel role (see Slot); two buffers that are alive at the same
///   time on one thread must use different slots.
/// - A pointer stays valid until the next scratch() call on the same thread and slot.
/// - Buffers are per thread: a buffer obtained on the master thread may be shared read/write
///   with worker threads inside a parallel region, as long as the master does not request the
///   same slot again while it is in use.
#include <cstddef>

namespace xtape::kernels {

/// Slot numbers used by the kernels of this folder. Kernels nest (conv calls sgemm), so each
/// role has its own slot.
enum Slot : int {
  slot_gemm_pack_a = 0,    ///< sgemm: per-thread packed block of op(A)
  slot_gemm_pack_b = 1,    ///< sgemm: shared packed panel of op(B) (owned by the calling thread)
  slot_gemm_tile = 2,      ///< sgemm: small-problem path temporaries
  slot_conv_col = 3,       ///< conv: per-thread im2col / dcol buffer
  slot_conv_partial = 4,   ///< conv: shared per-chunk partial kernel gradients
  slot_conv_aux = 5,       ///< conv: misc per-thread temporaries
  slot_reduce = 6,         ///< elementwise: shared partial sums of a blocked reduction
  slot_conv_fused = 7,     ///< conv: per-thread output of one image in a fused conv + pool
  slot_winograd_u = 8,     ///< winograd: shared transformed kernel (owned by the calling thread)
  slot_winograd_v = 9,     ///< winograd: per-thread transformed input tiles
  slot_winograd_m = 10,    ///< winograd: per-thread products before the output transform
  slot_winograd_tmp = 11,  ///< winograd: the flipped kernel of an input gradient
  slot_conv_padded = 12,   ///< conv: zero-padded copy of the input (see conv.cpp)
  slot_user0 = 13,         ///< first slot free for code outside kernels/
  slot_count = 16,
};

/// A 64-byte aligned buffer of at least n_floats floats, private to the calling thread, for
/// slot (0 <= slot < slot_count). Throws std::invalid_argument for a bad slot and
/// std::bad_alloc when memory runs out.
float* scratch(int slot, std::size_t n_floats);

/// Frees the calling thread's buffers (all slots). Pointers from scratch() become invalid.
void release_scratch();

/// Total bytes currently held by the calling thread's scratch buffers.
std::size_t scratch_bytes();

}  // namespace xtape::kernels
