//! The node a small firmware would run: two peer slots, 1 KiB messages, a 2 KiB send
//! queue, 1 KiB stream frames and 1200-byte datagrams, over caller-owned static storage
//! (a slot table and one `SLOT`-byte buffer per slot, with the `SlotBound` pool), as
//! meshlink-core's node docs describe for firmware.
#![no_std]

use meshlink_core::node::{Slot, SlotBound};
use meshlink_core::{Config, Node};

/// Peer slots.
pub const PEERS: usize = 2;
/// Bytes per slot buffer: `config().slot_buffer_len()` = max(2 + max_frame, max_datagram)
/// + max_message + send_queue (checked by the host test below).
pub const SLOT: usize = 1200 + 1024 + 2048;

/// A slot buffer: a cut of a static region; the node moves the reference, never the bytes.
pub type Buf = &'static mut [u8];
pub type FirmwareNode = Node<SlotBound<Buf>, &'static mut [Slot<Buf>]>;

/// The firmware's limits. `max_frame` must hold the largest handshake record (828 bytes,
/// `Node::new` refuses less); 1024 leaves room for a full Hello. Built field by field:
/// `Config` is `#[non_exhaustive]` outside the core.
#[allow(clippy::field_reassign_with_default)]
pub fn config() -> Config {
    let mut c = Config::default();
    c.max_frame = 1024;
    c.max_datagram = 1200;
    c.max_message = 1024;
    c.send_queue = 2048;
    c
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use meshlink_core::Keypair;
    use std::boxed::Box;
    use std::vec;

    #[test]
    fn slot_matches_config_and_node_builds() {
        assert_eq!(SLOT, config().slot_buffer_len());
        // On the device these are statics; leaked here.
        let region: &'static mut [u8] = Box::leak(vec![0u8; PEERS * SLOT].into_boxed_slice());
        let mut chunks = region.chunks_exact_mut(SLOT);
        let slots: &'static mut [Slot<Buf>; PEERS] =
            Box::leak(Box::new([Slot::with_buffer(chunks.next().unwrap()), Slot::with_buffer(chunks.next().unwrap())]));
        let node =
            FirmwareNode::new(config(), Keypair::from_secret([1; 32]), [2; 32], &mut slots[..], SlotBound::new());
        assert!(node.is_ok(), "firmware config refused: {:?}", node.err().map(|_| ()));
        std::println!(
            "host ({}-bit): size_of::<FirmwareNode>() = {} bytes, size_of::<Slot>() = {} bytes, plus {} in slot buffers",
            usize::BITS,
            core::mem::size_of::<FirmwareNode>(),
            core::mem::size_of::<Slot<Buf>>(),
            PEERS * SLOT
        );
    }
}
