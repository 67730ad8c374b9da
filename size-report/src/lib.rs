//! The node a small firmware would run: two peer slots, 1 KiB messages, a 2 KiB send
//! queue, 1 KiB stream frames and 1200-byte datagrams, with the slot buffers inline
//! (`[u8; SLOT]`), so the whole node is one statically allocated value.
#![no_std]

use meshlink_core::{Config, Node};

/// Peer slots.
pub const PEERS: usize = 2;
/// Bytes per slot buffer: `config().slot_buffer_len()` = max(2 + max_frame, max_datagram)
/// + max_message + send_queue (checked by the host test below).
pub const SLOT: usize = 1200 + 1024 + 2048;

pub type FirmwareNode = Node<[u8; SLOT], PEERS>;

/// The firmware's limits. `max_frame` must hold the largest handshake record (828 bytes,
/// `Node::new` refuses less); 1024 leaves room for a full Hello.
pub fn config() -> Config {
    Config { max_frame: 1024, max_datagram: 1200, max_message: 1024, send_queue: 2048, ..Config::default() }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use meshlink_core::Keypair;

    #[test]
    fn slot_matches_config_and_node_builds() {
        assert_eq!(SLOT, config().slot_buffer_len());
        let node = FirmwareNode::new(config(), Keypair::from_secret([1; 32]), [2; 32], || [0u8; SLOT]);
        assert!(node.is_ok(), "firmware config refused: {:?}", node.err().map(|_| ()));
        std::println!(
            "host ({}-bit): size_of::<Node<[u8; {SLOT}], {PEERS}>>() = {} bytes ({} in slot buffers)",
            usize::BITS,
            core::mem::size_of::<FirmwareNode>(),
            PEERS * SLOT
        );
    }
}
