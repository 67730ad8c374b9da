"""The README's quickstart, as a typed example (mypy --strict checks it)."""
import meshlink

with meshlink.Node() as node, meshlink.Node() as other:
    peer = node.connect_to_peer("127.0.0.1", other.port)
    node.send_message(peer.peer_id, b"hello")
    print(node.get_connection_quality(peer.peer_id))
    print([n.peer_id for n in node.get_all_nodes()])
    node.update_threat_score(peer.peer_id, 0.2)
