package pusher

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redcast/redcast"
	"github.com/redcast/redcast/protocol"
)

// clientEvent handles a client event (an event named client-*): on a
// private or presence channel the client is subscribed to, within the size
// and rate limits, it is published to the channel's other subscribers (the
// sender does not get it back). Refusals are pusher:error messages; none
// closes the connection, except the max_refusals-th in a row past the
// node's publish rate (see redcast.Client.PublishAuthorized).
func (s *session) clientEvent(m message) {
	switch {
	case m.Channel == "":
		s.send(errorMessage(0, "Client event rejected - no channel"))
		return
	case !strings.HasPrefix(m.Channel, privatePrefix) && !strings.HasPrefix(m.Channel, presencePrefix):
		s.send(errorMessage(0, "Client event rejected - only supported on private and presence channels"))
		return
	case !s.subscribed[m.Channel]:
		s.send(errorMessage(0, "Client event rejected - not subscribed to channel "+m.Channel))
		return
	case len(m.Data) > s.app.MaxEventSize:
		s.send(errorMessage(0, fmt.Sprintf("Client event rejected - data larger than %d bytes", s.app.MaxEventSize)))
		return
	case !s.events.Allow():
		s.send(errorMessage(codeRateLimited, "Client event rejected due to rate limit"))
		return
	}
	userID := ""
	if strings.HasPrefix(m.Channel, presencePrefix) {
		userID = s.user
	}
	data := publicationData(m.Event, m.Data, userID)
	err := s.client.PublishAuthorized(s.channel(m.Channel), data)
	switch {
	case err == nil:
		s.hookClientEvent(m, userID)
	case errors.Is(err, protocol.ErrPermissionDenied):
		s.send(errorMessage(0, "Client event rejected - not subscribed to channel "+m.Channel))
	default:
		perr, _ := redcast.ProtocolError(err)
		s.send(errorMessage(0, "Client event rejected - "+perr.Message))
	}
}
