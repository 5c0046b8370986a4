package redis

import (
	"context"
	"time"

	"github.com/redcast/redcast/protocol"
)

// PresenceRefreshInterval is how often the owner of presence entries must
// call AddPresence again for each of its clients so that they do not
// expire: a third of Config.PresenceTTL, so that two refreshes in a row
// may fail (or be late) before an entry disappears.
func (b *Broker) PresenceRefreshInterval() time.Duration { return b.cfg.PresenceTTL / 3 }

// AddPresence records info in the channel, or refreshes it: the entry
// expires Config.PresenceTTL later unless refreshed again. A node that
// crashes stops refreshing, so its clients disappear from Presence within
// PresenceTTL.
func (b *Broker) AddPresence(ctx context.Context, channel string, info *protocol.ClientInfo) error {
	if err := b.check(ctx, channel); err != nil {
		return err
	}
	if info == nil {
		return errNilInfo
	}
	tag := b.tag(channel)
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	err := presenceAddScript.Exec(octx, b.client, []string{tag + ":p", tag + ":z"},
		[]string{info.Client, encodeInfo(info), ms(b.cfg.PresenceTTL)}).Error()
	if err != nil {
		return b.wrap(ctx, "add presence", err)
	}
	return nil
}

// RemovePresence forgets the client in the channel. Forgetting a client
// that is not there is not an error.
func (b *Broker) RemovePresence(ctx context.Context, channel, clientID string) error {
	if err := b.check(ctx, channel); err != nil {
		return err
	}
	tag := b.tag(channel)
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	err := presenceRemoveScript.Exec(octx, b.client, []string{tag + ":p", tag + ":z"}, []string{clientID}).Error()
	if err != nil {
		return b.wrap(ctx, "remove presence", err)
	}
	return nil
}

// Presence returns the clients in the channel whose entries have not
// expired, in no particular order; expired entries are deleted on the way.
func (b *Broker) Presence(ctx context.Context, channel string) ([]*protocol.ClientInfo, error) {
	if err := b.check(ctx, channel); err != nil {
		return nil, err
	}
	tag := b.tag(channel)
	octx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	reply, err := presenceScript.Exec(octx, b.client, []string{tag + ":p", tag + ":z"}, nil).ToArray()
	if err != nil {
		return nil, b.wrap(ctx, "presence", err)
	}
	infos := make([]*protocol.ClientInfo, 0, len(reply)/2)
	for i := 1; i < len(reply); i += 2 {
		s, err := reply[i].ToString()
		if err != nil {
			return nil, err
		}
		info, err := decodeInfo(s)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}
