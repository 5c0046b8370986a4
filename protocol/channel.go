package protocol

import "strings"

// MaxChannelLength is the longest channel name, in bytes.
const MaxChannelLength = 255

// MaxNameLength is the longest display name an anonymous client may give.
const MaxNameLength = 64

// NamespaceSeparator separates a channel's namespace from the rest of its
// name: "chat:general" is in namespace "chat"; "news" is in the default
// namespace "".
const NamespaceSeparator = ':'

// ValidateChannel checks a channel name: 1 to MaxChannelLength bytes of ASCII
// letters, digits and the characters _ - . : @ / = , # ~ (no spaces, no
// control characters, nothing that needs escaping in JSON or a URL path).
func ValidateChannel(ch string) error {
	if ch == "" {
		return ErrInvalidChannel.WithMessage("channel name is empty")
	}
	if len(ch) > MaxChannelLength {
		return ErrInvalidChannel.WithMessage("channel name longer than %d bytes", MaxChannelLength)
	}
	for i := 0; i < len(ch); i++ {
		if !channelByte(ch[i]) {
			return ErrInvalidChannel.WithMessage("channel name has a character outside [A-Za-z0-9_.:@/=,#~-] at byte %d", i)
		}
	}
	return nil
}

func channelByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("_-.:@/=,#~", c) >= 0
}

// Namespace returns the namespace of a channel: the part before the first
// NamespaceSeparator, or "" when there is none.
func Namespace(ch string) string {
	if i := strings.IndexByte(ch, NamespaceSeparator); i >= 0 {
		return ch[:i]
	}
	return ""
}
