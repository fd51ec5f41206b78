//! CPU affinity (`sched_setaffinity(2)`, `sched_getaffinity(2)`): the one
//! place of this FFI, for the workers, the server's choice of CPUs and the
//! load generator.

#![expect(
    unsafe_code,
    reason = "sched_setaffinity(2) and sched_getaffinity(2) through libc"
)]

use std::io;

/// Pins thread or process `pid` (0: the calling thread) to `cpu` alone.
///
/// Errors: `EINVAL` for a CPU beyond `CPU_SETSIZE`, or the system call's.
pub fn pin(pid: libc::pid_t, cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: a zeroed cpu_set_t is a valid empty set; `cpu` is within it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` was checked against the set's size.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: the size and pointer describe `set`.
    let rc = unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The CPUs this process may run on (its affinity mask), in order; all
/// `available_parallelism` CPUs when the mask cannot be read.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the size and pointer describe `set`.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    // SAFETY: `set` was filled above; CPU_ISSET only reads it.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_thread_can_be_pinned_to_an_allowed_cpu_and_not_past_the_set() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty());
        let t = std::thread::spawn(move || pin(0, cpus[0]));
        assert!(t.join().expect("thread").is_ok());
        assert!(pin(0, libc::CPU_SETSIZE as usize).is_err());
    }
}
