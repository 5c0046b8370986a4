package redis

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// numSlots is how many hash slots a Redis Cluster has.
const numSlots = 16384

// slotOf returns the Cluster hash slot of a key (or a sharded pub/sub
// channel): CRC16 of its hash tag (the part between the first '{' and the
// next '}', if not empty) or of the whole key, modulo 16384.
func slotOf(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return crc16(key) % numSlots
}

// crc16 is CRC-16/XMODEM, the checksum Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// topology is which master owns each slot of a Cluster, as one node
// reported it (CLUSTER SHARDS). It may be stale: a subscription on the
// wrong master is refused (MOVED) or dropped (SUNSUBSCRIBE), and the
// topology is read again.
type topology struct {
	masters []string         // addresses host:port
	owner   [numSlots]uint16 // index+1 in masters; 0 when no master owns the slot
}

// master returns the address of the master that owns the channel's slot.
func (t *topology) master(pubsubChannel string) (string, bool) {
	i := t.owner[slotOf(pubsubChannel)]
	if i == 0 {
		return "", false
	}
	return t.masters[i-1], true
}

// readTopology asks a node of the Cluster for its shards (through c: the
// broker's client, or one node's), and keeps the master of each shard
// that the node sees online.
func (b *Broker) readTopology(ctx context.Context, c rueidis.Client) (*topology, error) {
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	shards, err := c.Do(octx, c.B().ClusterShards().Build()).ToArray()
	if err != nil {
		return nil, unavailable("cluster shards", err)
	}
	t := &topology{}
	for _, shard := range shards {
		m, err := shard.AsMap()
		if err != nil {
			return nil, fmt.Errorf("redis: cluster shards: %w", err)
		}
		slots, err := mapField(m, "slots").AsIntSlice()
		if err != nil {
			return nil, fmt.Errorf("redis: cluster shards: slots: %w", err)
		}
		nodes, err := mapField(m, "nodes").ToArray()
		if err != nil {
			return nil, fmt.Errorf("redis: cluster shards: nodes: %w", err)
		}
		addr := b.shardMaster(nodes)
		if addr == "" || len(slots) == 0 || len(slots)%2 != 0 {
			// A node may list another as a master of no slots while it
			// has not heard yet that it is a replica.
			continue
		}
		t.masters = append(t.masters, addr)
		idx := uint16(len(t.masters))
		for i := 0; i < len(slots); i += 2 {
			for s := max(slots[i], 0); s <= min(slots[i+1], numSlots-1); s++ {
				t.owner[s] = idx
			}
		}
	}
	return t, nil
}

// shardMaster returns the address of the online master among a shard's
// nodes of CLUSTER SHARDS, or "".
func (b *Broker) shardMaster(nodes []rueidis.RedisMessage) string {
	for _, n := range nodes {
		f, err := n.AsMap()
		if err != nil {
			continue
		}
		role, _ := mapField(f, "role").ToString()
		health, _ := mapField(f, "health").ToString()
		if role != "master" || health != "online" {
			continue
		}
		host, _ := mapField(f, "endpoint").ToString()
		if host == "" || host == "?" {
			host, _ = mapField(f, "ip").ToString()
		}
		port, _ := mapField(f, "port").AsInt64()
		if b.opt.TLSConfig != nil {
			if tp, err := mapField(f, "tls-port").AsInt64(); err == nil && tp > 0 {
				port = tp
			}
		}
		if host == "" || port <= 0 {
			continue
		}
		return net.JoinHostPort(host, strconv.FormatInt(port, 10))
	}
	return ""
}

// mapField returns a field of a RESP map reply (an empty message when
// missing).
func mapField(m map[string]rueidis.RedisMessage, name string) *rueidis.RedisMessage {
	v := m[name]
	return &v
}
