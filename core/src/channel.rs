//! A bounded channel of [`Batch`]es, bounded both in batches and in bytes, so memory
//! stays flat whatever the table or transaction size.

use crate::error::{Error, ErrorKind, Result};
use crate::event::Batch;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Bytes are counted in units of this size against the semaphore.
const UNIT: usize = 1024;

/// Sending half of a batch channel.
#[derive(Debug, Clone)]
pub struct BatchSender {
    tx: mpsc::Sender<(Batch, OwnedSemaphorePermit)>,
    bytes: Arc<Semaphore>,
    max_units: u32,
}

/// Receiving half of a batch channel.
#[derive(Debug)]
pub struct BatchReceiver {
    rx: mpsc::Receiver<(Batch, OwnedSemaphorePermit)>,
}

/// A channel that holds at most `max_batches` batches and about `max_bytes` bytes.
/// A single batch larger than `max_bytes` still passes, alone.
pub fn batch_channel(max_batches: usize, max_bytes: usize) -> (BatchSender, BatchReceiver) {
    let (tx, rx) = mpsc::channel(max_batches.max(1));
    let max_units = u32::try_from((max_bytes / UNIT).max(1)).unwrap_or(u32::MAX >> 4);
    let bytes = Arc::new(Semaphore::new(max_units as usize));
    (
        BatchSender {
            tx,
            bytes,
            max_units,
        },
        BatchReceiver { rx },
    )
}

impl BatchSender {
    /// Sends a batch, waiting while the channel is full. Fails when the receiver is gone
    /// (the pipeline stopped), which the source should treat as a request to stop.
    pub async fn send(&self, batch: Batch) -> Result<()> {
        let units = u32::try_from(batch.bytes / UNIT)
            .unwrap_or(u32::MAX)
            .clamp(1, self.max_units);
        let permit = Arc::clone(&self.bytes)
            .acquire_many_owned(units)
            .await
            .map_err(|_| closed())?;
        self.tx.send((batch, permit)).await.map_err(|_| closed())
    }

    /// Whether the receiving side has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

fn closed() -> Error {
    Error::new(
        ErrorKind::Internal,
        "the pipeline stopped receiving batches",
    )
    .retryable(false)
}

impl BatchReceiver {
    /// The next batch, or `None` when every sender is dropped.
    pub async fn recv(&mut self) -> Option<Batch> {
        self.rx.recv().await.map(|(batch, _permit)| batch)
    }

    /// Whether no batch is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{TableId, TableSchema};
    use std::time::Duration;

    fn batch(bytes: usize) -> Batch {
        let mut b = Batch::new(Arc::new(TableSchema::new(TableId::new("s", "t"), vec![])));
        b.bytes = bytes;
        b
    }

    #[tokio::test]
    async fn byte_bound_blocks_the_sender_until_the_receiver_drains() {
        let (tx, mut rx) = batch_channel(100, 4 * UNIT);
        tx.send(batch(3 * UNIT)).await.expect("first fits");
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), tx.send(batch(2 * UNIT))).await;
        assert!(blocked.is_err(), "second batch must wait for room");
        assert!(rx.recv().await.is_some());
        tokio::time::timeout(Duration::from_secs(5), tx.send(batch(2 * UNIT)))
            .await
            .expect("room after drain")
            .expect("sent");
    }

    #[tokio::test]
    async fn oversized_batch_passes_alone() {
        let (tx, mut rx) = batch_channel(2, 2 * UNIT);
        tx.send(batch(100 * UNIT))
            .await
            .expect("oversized batch is clamped");
        assert_eq!(rx.recv().await.map(|b| b.bytes), Some(100 * UNIT));
    }

    #[tokio::test]
    async fn send_fails_when_receiver_dropped() {
        let (tx, rx) = batch_channel(2, 2 * UNIT);
        drop(rx);
        assert!(tx.send(batch(1)).await.is_err());
    }
}
