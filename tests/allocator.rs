//! The node's allocator settings, checked by their effect in a process of
//! their own (a resident-set reading is only meaningful where no other
//! test allocates at the same time, and the options are process-wide).

use meridian::allocator::{STARTUP, begin_bulk, is_bulk, release_freed, settle, tune};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("statm's second field is the resident page count");
    pages * 4096
}

const BLOCK: usize = 64 * 1024;
const BLOCKS: usize = 4096;

/// Allocates 256 MiB through mimalloc in blocks of 64 KiB (below the size
/// it maps from the OS one by one), touches them, frees them, runs
/// `after_free`, and returns the resident set before, grown and after.
fn allocate_and_free(after_free: impl FnOnce()) -> (u64, u64, u64) {
    let before = resident_bytes();
    let mut blocks = Vec::with_capacity(BLOCKS);
    for i in 0..BLOCKS {
        // SAFETY: mi_malloc returns a block of BLOCK bytes or null.
        let block = unsafe { libmimalloc_sys::mi_malloc(BLOCK) }.cast::<u8>();
        assert!(!block.is_null());
        // SAFETY: the block is BLOCK bytes long; this touches every page.
        unsafe { std::ptr::write_bytes(block, i as u8, BLOCK) };
        blocks.push(block);
    }
    let grown = resident_bytes();
    for block in blocks {
        // SAFETY: each block came from mi_malloc and is freed once.
        unsafe { libmimalloc_sys::mi_free(block.cast()) };
    }
    after_free();
    (before, grown, resident_bytes())
}

/// The allocation showed in the resident set; returns its size.
fn assert_grew(what: &str, before: u64, grown: u64) -> u64 {
    let size = (BLOCK * BLOCKS) as u64;
    assert!(
        grown >= before + size / 2,
        "{what}: 256 MiB allocated should show: {before} -> {grown}"
    );
    size
}

/// The opposite: freed pages stay resident (the steady delay has not run
/// out: the frees and the reading take well under a second).
fn assert_kept(what: &str, (before, grown, after): (u64, u64, u64)) {
    let size = assert_grew(what, before, grown);
    assert!(
        after > before + size / 2,
        "{what}: freed pages should stay for the steady delay: {before} -> {grown} -> {after}"
    );
}

fn assert_handed_back(what: &str, (before, grown, after): (u64, u64, u64)) {
    let size = assert_grew(what, before, grown);
    assert!(
        after < before + size / 4,
        "{what}: freed pages should leave the resident set: {before} -> {grown} -> {after}"
    );
}

/// One test, in order, as `tune` cannot be undone: first `release_freed`
/// on mimalloc's defaults (which on their own keep the freed 256 MiB
/// resident, as the node saw after reloads), then `tune` alone.
#[test]
fn freed_memory_goes_back_to_the_system() {
    assert_handed_back(
        "release_freed, default options",
        allocate_and_free(release_freed),
    );
    tune();
    assert!(is_bulk(), "start-up is a bulk phase");
    assert!(
        meridian::allocator::is_thp_disabled(),
        "tune turns transparent huge pages off for the process"
    );
    assert_handed_back(
        "tuned, nothing called after the frees",
        allocate_and_free(|| {}),
    );

    // Between bulk phases, freed pages wait to be reused...
    settle(STARTUP);
    assert!(!is_bulk());
    let (before, _, kept) = allocate_and_free(|| {});
    assert_kept(
        "settled, nothing called after the frees",
        (before, kept, kept),
    );
    // ... and a trim hands back what waited.
    release_freed();
    let trimmed = resident_bytes();
    assert!(
        trimmed < before + (BLOCK * BLOCKS) as u64 / 4,
        "settled, then release_freed: what waited should leave: {before} -> {kept} -> {trimmed}"
    );

    // A phase begun before an older phase's settle outlives that settle.
    let first = begin_bulk();
    let second = begin_bulk();
    settle(first);
    assert!(is_bulk(), "a later phase is still running");
    assert_handed_back(
        "in a bulk phase, nothing called after the frees",
        allocate_and_free(|| {}),
    );
    settle(second);
    assert!(!is_bulk());
}
