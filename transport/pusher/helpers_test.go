package pusher_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/redcast/redcast/internal/pushertest"
	"github.com/redcast/redcast/internal/testserver"
	"github.com/redcast/redcast/server"
	"github.com/redcast/redcast/transport/pusher"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The app every test serves.
var testApp = pusher.App{ID: "1", Key: "app-key", Secret: "app-secret"}

// start serves a redcast server with testApp and returns its address.
func start(t *testing.T, cfg server.Config) (string, *server.Server) {
	t.Helper()
	if cfg.Pusher.Apps == nil {
		cfg.Pusher.Apps = []pusher.App{testApp}
	}
	return testserver.Start(t, cfg)
}

// client is a raw client of the Pusher endpoint (see package pushertest).
type client = pushertest.Client

// dial connects to /app/{key} with query (such as "protocol=7").
func dial(t *testing.T, addr, key, query string) *client {
	t.Helper()
	return pushertest.Dial(t, addr, key, query)
}

// connect connects to testApp and returns the socket id.
func connect(t *testing.T, addr string) (*client, string) {
	t.Helper()
	return pushertest.Connect(t, addr, testApp.Key)
}

// presenceAuth returns the auth and channel_data of a presence subscribe
// to testApp.
func presenceAuth(socketID, channel, user, info string) (string, string) {
	return pushertest.PresenceAuth(testApp.Key, testApp.Secret, socketID, channel, user, info)
}

// joinPresence subscribes c to a presence channel of testApp as user.
func joinPresence(c *client, socketID, channel, user string) map[string]any {
	return c.JoinPresence(testApp.Key, testApp.Secret, socketID, channel, user)
}

// errorData decodes the data of pusher:error.
var errorData = pushertest.ErrorData

// testserverStart serves a redcast server without Pusher apps.
func testserverStart(t *testing.T) (string, *server.Server) {
	t.Helper()
	return testserver.Start(t, server.Config{})
}
