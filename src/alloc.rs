//! Allocator tuning: for libtorch, and for the memory a dropped graph leaves on the heap.
//!
//! libtorch allocates and frees large temporary buffers on every forward pass. With glibc's
//! defaults, each buffer above the dynamic mmap threshold is mmap'd and unmapped again, and the
//! heap top is trimmed after each call, so every batch pays for fresh page faults: measured on
//! 2 cores, fp32 embedding ran at 65 texts/s with a third of the time in the kernel. Keeping
//! freed memory in the process (mmap only above 32 MiB, never trim, grow the heap in 256 MiB
//! steps) brings it to ~96 texts/s. This is the same as starting the process under
//! `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=<large> MALLOC_TOP_PAD_=268435456`,
//! done from inside so that users need not know.

use std::sync::Once;

static TUNE: Once = Once::new();

/// Applies the tuning once per process; later calls do nothing. A no-op off glibc.
pub fn keep_freed_memory() {
    TUNE.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            libc::mallopt(libc::M_TOP_PAD, 256 << 20);
        }
    });
}

/// Hands the memory freed on the heap back to the system. glibc returns only the top of the
/// heap on its own: after a structure of millions of small allocations is dropped (hnsw_rs's
/// graph), the pages it held would count in the process's memory until the end of the run,
/// under everything allocated after. A no-op off glibc.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
