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
//! fifth faster than glibc's. With the reload that re-reads only changed
//! services, glibc (fixed mmap threshold, `malloc_trim` after reloads)
//! still held 362–390 MiB after a million prefixes and 240–285 after 20
//! reloads, so the trade stands.
//!
//! Handing pages back at once has a price when nothing big is freed: the
//! checker pool. Each HTTP probe allocates about 34 KiB in some 23 blocks,
//! four of them of 7–8 KiB (hyper's read and write buffers and its request
//! channel, and the probe's boxed future), so the few probes in flight
//! keep emptying and refilling whole 64 KiB pages; with a purge delay of 0
//! every emptied page was decommitted (`madvise`) and faulted back in
//! moments later: 5,000 endpoints probed every second cost ~10,000 page
//! faults a second (9% of the node's CPU samples) and 32–39% of a core
//! against glibc's 28–34% in the same minutes. A purge
//! delay alone does not do: with 100–1000 ms everywhere the probes' faults
//! fell to 150–1,500 a second and their CPU to glibc's, but the reload
//! benchmark held 240–440 MiB after the prefixes and 260–350 after the
//! reloads (peak 474–544), over the 256 MiB target.
//!
//! So the delay follows the work. A **bulk phase** (start-up, a reload, a
//! latency batch: a whole config or table built and its predecessor freed)
//! runs with a purge delay of 0, as above; [`begin_bulk`] starts one. The
//! trim after it ([`release_freed`]) hands back what it freed, and a couple
//! of seconds later [`settle`] returns to the **steady** delay of
//! [`STEADY_PURGE_DELAY`] (the publisher's retiring thread does both),
//! under which a page emptied by probes is reused while still committed
//! and is handed back only if it stays free for that long. The phase
//! outlasts its trim because the pages a freed build's blocks sat in reach
//! mimalloc's free list only when their owning threads next look, often a
//! second later. mimalloc purges expired pages only when it next takes or
//! frees pages, which an idle node may not do for minutes: so a thread
//! calls [`purge_expired`] every half delay, for as long as the allocator
//! was called lately ([`was_used`]: a purge is scheduled only inside a
//! call), and every 10 s regardless. A settle for a phase that a
//! later [`begin_bulk`] has overtaken does nothing; the later phase's
//! settle ends both. Measured with this, the reload benchmark held 222–233
//! MiB after the prefixes and 241–247 after the reloads (the build before,
//! in the same minutes: 221–225 and 236–247); the checker pool's HTTP
//! probes fault ~250–450 times a second (glibc 20–850) and cost what
//! glibc's do, within this VM's noise (README, Benchmarks, "Checker
//! pool").
//!
//! The binary installs [`NodeAllocator`] as its global allocator; the
//! library's own tests and benches keep the system allocator, so their
//! memory figures are glibc's.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::{c_int, c_long};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use mimalloc::MiMalloc;

/// The allocator `meridian` runs on: mimalloc, noting that it was called
/// (see [`was_used`]).
pub struct NodeAllocator;

/// Set by every allocator call since [`was_used`] last cleared it. A load
/// and a branch per call, and a store only for the first call after a
/// clear, so the cache line stays shared between the threads that read it.
static USED: AtomicBool = AtomicBool::new(false);

#[inline(always)]
fn note_use() {
    if !USED.load(Relaxed) {
        USED.store(true, Relaxed);
    }
}

/// Whether any thread took or gave back memory through [`NodeAllocator`]
/// since the last call (which clears the mark). mimalloc schedules a page's
/// purge only inside such a call, so with none since the last look, no
/// purge has been scheduled since either (thread exits aside: mimalloc
/// hands an ending thread's pages over in its own thread-exit hook).
pub fn was_used() -> bool {
    USED.swap(false, Relaxed)
}

// SAFETY: every method forwards its arguments unchanged to mimalloc's
// `GlobalAlloc`, which upholds the trait's contract; noting the call
// touches no memory the caller handed over.
unsafe impl GlobalAlloc for NodeAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_use();
        // SAFETY: the caller's contract, passed on.
        unsafe { MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_use();
        // SAFETY: the caller's contract, passed on.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_use();
        // SAFETY: the caller's contract, passed on: `ptr` came from this
        // allocator, which is mimalloc's.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_use();
        // SAFETY: the caller's contract, passed on.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}

/// The position of `mi_option_purge_delay` in mimalloc 3.3's `mi_option_e`
/// (its `mimalloc.h`). The Rust binding does not name it; the crate
/// versions are pinned in Cargo.toml so that the enum cannot move under
/// it, and `tests/allocator.rs` checks the setting by its effect.
const PURGE_DELAY: c_int = 15;

/// The position of `mi_option_allow_thp` in the same enum.
const ALLOW_THP: c_int = 43;

/// The purge delay between bulk phases: long enough that the pages probes
/// empty and refill many times a second stay committed (measured at 5,000
/// endpoints: 0 ms ~10,000 page faults a second, 100 ms ~1,300, 500 ms
/// ~400, 1000 ms ~200; glibc 10–800), short enough that what is freed
/// outside a bulk phase leaves within a second.
pub const STEADY_PURGE_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// A bulk phase begun by [`begin_bulk`], to be ended by [`settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a bulk phase lasts until it is settled"]
pub struct Bulk(u64);

/// Which delay is in force, and the last phase begun; behind a lock so that
/// a phase begun on one thread and a settle on another cannot interleave
/// between reading the count and setting the option.
struct Mode {
    latest: u64,
    is_bulk: bool,
}

/// Start-up is a bulk phase (the first config and snapshot are built and
/// their scaffolding freed), matching the delay [`tune`] sets.
static MODE: std::sync::Mutex<Mode> = std::sync::Mutex::new(Mode {
    latest: 0,
    is_bulk: true,
});

/// The start-up phase, ended by the first trim (the publisher's).
pub const STARTUP: Bulk = Bulk(0);

fn set_purge_delay(ms: c_long) {
    // SAFETY: mi_option_set takes no pointers; options are plain integers
    // mimalloc reads when it next needs them.
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, ms);
    }
}

fn mode() -> std::sync::MutexGuard<'static, Mode> {
    // The lock guards two plain fields; a panic elsewhere leaves them valid.
    MODE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sets the allocator's options; call first thing in `main`. Harmless when
/// the process runs on another global allocator. The process starts in a
/// bulk phase, [`STARTUP`].
///
/// Transparent huge pages are turned off for the process: mimalloc asks
/// for them on its arenas, and since freed pages go back at once in a bulk
/// phase, each reload's build faulted in fresh 2 MiB pages, the kernel
/// zeroing every one whole. Measured with `CHANGE=all bash
/// benches/reload.sh` (10,000 services, every one changed per reload; two
/// runs each on a shared machine): 182-192 ms of CPU per reload against
/// 206-211, and 101-102 MiB resident after 20 reloads against 117.
/// mimalloc reads its own option when it starts, before `main`, so the
/// process-wide switch is set here too; it applies to memory already
/// mapped.
pub fn tune() {
    let _mode = mode();
    set_purge_delay(0);
    // SAFETY: as in `set_purge_delay`; prctl with these arguments only
    // sets a flag of this process.
    unsafe {
        libmimalloc_sys::mi_option_set(ALLOW_THP, 0 as c_long);
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Whether transparent huge pages are off for this process (see [`tune`]).
pub fn is_thp_disabled() -> bool {
    // SAFETY: PR_GET_THP_DISABLE reads a flag of this process.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

/// Starts a bulk phase: from now on freed pages go back to the system at
/// once, until [`settle`] is called with the returned phase (or a later one).
pub fn begin_bulk() -> Bulk {
    let mut mode = mode();
    mode.latest += 1;
    if !mode.is_bulk {
        mode.is_bulk = true;
        set_purge_delay(0);
    }
    Bulk(mode.latest)
}

/// Ends `phase` and every phase begun before it: freed pages wait
/// [`STEADY_PURGE_DELAY`] again. Does nothing if a later phase has begun
/// since, which its own settle ends. Follow it with [`release_freed`], which
/// purges whatever is waiting (nothing waits in a bulk phase, unless it was
/// freed just before the phase began).
pub fn settle(phase: Bulk) {
    let mut mode = mode();
    if mode.is_bulk && phase.0 == mode.latest {
        mode.is_bulk = false;
        set_purge_delay(STEADY_PURGE_DELAY.as_millis() as c_long);
    }
}

/// Purges the free pages whose steady delay has run out. mimalloc checks
/// for them only when it next frees or takes pages, which an idle node may
/// not do for a long time; a thread calls this every fraction of the delay
/// while the allocator is in use ([`was_used`]), and now and then when not.
pub fn purge_expired() {
    // SAFETY: neither takes pointers. mi_thread_init makes sure the calling
    // thread has a heap: mi_collect does nothing on a thread without one.
    unsafe {
        libmimalloc_sys::mi_thread_init();
        libmimalloc_sys::mi_collect(false);
    }
}

/// Whether a bulk phase is in force (freed pages go back at once).
pub fn is_bulk() -> bool {
    mode().is_bulk
}

/// Hands memory the calling thread's heap no longer uses back to the
/// system, after a reload or a latency batch freed a build's worth, and
/// purges every free page still waiting out the steady delay (none wait in
/// a bulk phase: there, other threads' pages go back as they free them).
pub fn release_freed() {
    // SAFETY: mi_collect takes no pointers; it only walks the calling
    // thread's own heap.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_through_the_node_allocator_marks_it_used_until_looked_at() {
        let layout = Layout::from_size_align(64, 8).unwrap();
        let _ = was_used();
        // SAFETY: a non-zero layout; the block is freed below with it.
        let block = unsafe { NodeAllocator.alloc(layout) };
        assert!(!block.is_null());
        assert!(was_used(), "an allocation marks it");
        assert!(!was_used(), "looking clears the mark");
        // SAFETY: allocated above with this layout, freed once.
        unsafe { NodeAllocator.dealloc(block, layout) };
        assert!(was_used(), "a free marks it");
    }
}
