//! The node's memory allocator and how it is set up.
//!
//! A node's memory comes in two shapes: steady small allocations (probes,
//! admin requests, TCP queries; the UDP answer path allocates nothing) and,
//! at each reload or latency batch, a whole config or table built on one
//! thread, handed to another and freed there a little later. glibc keeps
//! what such a build frees in the arena of the thread that allocated it,
//! fragmented between longer-lived blocks, and the next build, on another
//! thread, does not reuse it: measured with `LATENCY=1000000 bash
//! benches/reload.sh` (10,000 services, a million latency prefixes, 20
//! reloads), glibc with a fixed mmap threshold and `malloc_trim` after each
//! reload held 265–296 MiB after the prefixes and 270–272 MiB after the
//! reloads (peak 372–400). Limiting glibc to one arena brought that to 213
//! and 217 MiB but made reloads 15–50% slower on a busy machine (every
//! thread then takes one lock for all but the smallest blocks).
//!
//! mimalloc, told to hand freed pages back at once (`purge_delay` 0),
//! measured the same way: 80–84 MiB after start-up (95 with glibc),
//! 207–209 after the prefixes, 216–218 after the reloads, peak 332–334
//! (372–400 with glibc), and in back-to-back runs its reloads were about a
//! fifth faster than glibc's. The cost is in the checker pool: on a quiet
//! machine, 5,000 endpoints probed over HTTP every second take 30–32% of a
//! core against glibc's 28% (TCP probes the same, 17%), at about half the
//! resident set (56 MiB against 63). A smaller purge delay (1 ms) or
//! resetting instead of decommitting purged pages measured the same. With
//! the reload that re-reads only changed services, glibc (fixed mmap
//! threshold, `malloc_trim` after reloads) still held 362–390 MiB after a
//! million prefixes and 240–285 after 20 reloads, so the trade stands.
//!
//! The binary installs [`NodeAllocator`] as its global allocator; the
//! library's own tests and benches keep the system allocator, so their
//! memory figures are glibc's.

/// The allocator `meridian` runs on.
pub use mimalloc::MiMalloc as NodeAllocator;

use std::ffi::{c_int, c_long};

/// The position of `mi_option_purge_delay` in mimalloc 3.3's `mi_option_e`
/// (its `mimalloc.h`). The Rust binding does not name it; the crate
/// versions are pinned in Cargo.toml so that the enum cannot move under
/// it, and `tests/allocator.rs` checks the setting by its effect.
const PURGE_DELAY: c_int = 15;

/// The position of `mi_option_allow_thp` in the same enum.
const ALLOW_THP: c_int = 43;

/// Sets the allocator's options; call first thing in `main`. Harmless when
/// the process runs on another global allocator.
///
/// Transparent huge pages are turned off for the process: mimalloc asks
/// for them on its arenas, and since freed pages go back at once, each
/// reload's build faulted in fresh 2 MiB pages, the kernel zeroing every
/// one whole. Measured with `CHANGE=all bash benches/reload.sh` (10,000
/// services, every one changed per reload; two runs each on a shared
/// machine): 182-192 ms of CPU per reload against 206-211, and 101-102 MiB
/// resident after 20 reloads against 117. mimalloc reads its own option
/// when it starts, before `main`, so the process-wide switch is set here
/// too; it applies to memory already mapped.
pub fn tune() {
    // SAFETY: mi_option_set takes no pointers; options are plain integers
    // mimalloc reads when it next needs them. prctl with these arguments
    // only sets a flag of this process.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0 as c_long);
        libmimalloc_sys::mi_option_set(ALLOW_THP, 0 as c_long);
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Whether transparent huge pages are off for this process (see [`tune`]).
pub fn is_thp_disabled() -> bool {
    // SAFETY: PR_GET_THP_DISABLE reads a flag of this process.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

/// Hands memory the calling thread's heap no longer uses back to the
/// system, after a reload or a latency batch freed a build's worth. Other
/// threads' pages go back as they free them, since the purge delay is 0.
pub fn release_freed() {
    // SAFETY: mi_collect takes no pointers; it only walks the calling
    // thread's own heap.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
