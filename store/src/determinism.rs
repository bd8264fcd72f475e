//! Every source of run-to-run variation inside the store, in one place: randomness and work
//! moved off the async threads. A deterministic simulation (`flotilla-jepsen sim`) pins both
//! down for the thread it runs on; production leaves them as they were.
//!
//! - [`rng`]: a thread-local generator seeded from the OS. openraft draws its election timeouts
//!   from it (through [`Runtime`], our `AsyncRuntime`), and so do lease IDs and snapshot names.
//!   [`seed_this_thread`] replaces it with a seeded one.
//! - [`offload`]: blocking RocksDB work (log appends, checkpoints) runs on tokio's blocking
//!   pool, whose threads finish at moments the seed cannot decide. [`run_blocking_inline`]
//!   makes it run inline on this thread instead: slower, but its place in the schedule is
//!   then a function of the seed.
//!
//! Invariant: with both set on the single thread of a current-thread runtime with paused time
//! and a seeded `rng_seed`, the store's behaviour is a function of its inputs and the seed.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::error::StoreError;

thread_local! {
    static RNG: RefCell<StdRng> = RefCell::new(StdRng::from_entropy());
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Replace this thread's generator with one seeded by `seed`.
pub fn seed_this_thread(seed: u64) {
    RNG.with(|rng| *rng.borrow_mut() = StdRng::seed_from_u64(seed));
}

/// Run [`offload`]ed work inline on this thread from now on (deterministic simulation only:
/// it blocks the async thread for the duration of each RocksDB write).
pub fn run_blocking_inline() {
    INLINE.with(|inline| inline.set(true));
}

/// A handle to this thread's generator (cheap; like `rand::thread_rng()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadRng;

/// This thread's generator.
pub fn rng() -> ThreadRng {
    ThreadRng
}

impl RngCore for ThreadRng {
    fn next_u32(&mut self) -> u32 {
        RNG.with(|rng| rng.borrow_mut().next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        RNG.with(|rng| rng.borrow_mut().next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        RNG.with(|rng| rng.borrow_mut().fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        RNG.with(|rng| rng.borrow_mut().try_fill_bytes(dest))
    }
}

/// Run blocking `work` off the async threads (inline after [`run_blocking_inline`]).
pub async fn offload<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if INLINE.with(Cell::get) {
        return Ok(work());
    }
    tokio::task::spawn_blocking(work).await.map_err(StoreError::storage)
}

/// openraft's runtime: tokio's, except that its random numbers come from [`rng`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Runtime;

type Tokio = TokioRuntime;

impl AsyncRuntime for Runtime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: Send + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + Send> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ThreadRng;
    type OneshotSender<T: Send> = <Tokio as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <Tokio as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: Send> = <Tokio as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + Send + 'static,
        T::Output: Send + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + Send>(duration: Duration, future: F) -> Self::Timeout<R, F> {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + Send>(deadline: Self::Instant, future: F) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        rng()
    }

    fn oneshot<T: Send>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>) {
        Tokio::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn a_seeded_thread_repeats_its_numbers() {
        let draw = || (0..8).map(|_| rng().gen_range(0..1_000_000)).collect::<Vec<u32>>();
        seed_this_thread(7);
        let first = draw();
        seed_this_thread(7);
        assert_eq!(draw(), first);
        seed_this_thread(8);
        assert_ne!(draw(), first);
    }

    #[tokio::test]
    async fn inline_offload_runs_on_the_calling_thread() {
        let me = std::thread::current().id();
        let pooled = offload(move || std::thread::current().id()).await.unwrap();
        assert_ne!(pooled, me);
        run_blocking_inline();
        let inline = offload(move || std::thread::current().id()).await.unwrap();
        assert_eq!(inline, me);
    }
}
