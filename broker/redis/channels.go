package redis

import (
	"context"
	"strings"
)

// Channels returns the channels some node is subscribed to (PUBSUB
// CHANNELS on the broker's prefix), in no particular order.
func (b *Broker) Channels(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pattern := globEscape(b.cfg.Prefix) + ":{*}"
	names, err := b.client.Do(ctx, b.client.B().PubsubChannels().Pattern(pattern).Build()).AsStrSlice()
	if err != nil {
		return nil, b.wrap(ctx, "list channels", err)
	}
	out := make([]string, 0, len(names))
	for _, name := range names {
		if ch, ok := b.channelOf(name); ok {
			out = append(out, ch)
		}
	}
	return out, nil
}

// globEscape escapes the characters a Redis glob pattern gives meaning to.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
