package pusher

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/redcast/redcast/protocol"
)

// This file is the HTTP API's queries of channels: which are occupied and
// by how many users and connections. Counts come from what the node knows
// across the cluster: Node.Channels (the channels with a subscriber on any
// node, when the broker can tell) and presence.

// The attributes the info query parameter may ask for.
const (
	infoUserCount         = "user_count"
	infoSubscriptionCount = "subscription_count"
)

// channelInfo is a channel's attributes in a query's answer.
type channelInfo struct {
	Occupied          *bool `json:"occupied,omitempty"`
	UserCount         *int  `json:"user_count,omitempty"`
	SubscriptionCount *int  `json:"subscription_count,omitempty"`
}

// parseInfo parses an info attribute list: which of user_count and
// subscription_count it asks for, and an error message for an unknown
// attribute.
func parseInfo(list string) (userCount, subCount bool, bad string) {
	for _, a := range strings.Split(list, ",") {
		switch a {
		case "":
		case infoUserCount:
			userCount = true
		case infoSubscriptionCount:
			subCount = true
		default:
			return false, false, fmt.Sprintf("Unknown info attribute %q (user_count, subscription_count)", a)
		}
	}
	return userCount, subCount, ""
}

// queryInfo parses the info query parameter, answering the request with
// 400 and returning false when it asks for what it may not: user_count of
// presence channels only.
func queryInfo(w http.ResponseWriter, r *http.Request, presence bool) (userCount, subCount, ok bool) {
	userCount, subCount, bad := parseInfo(r.URL.Query().Get("info"))
	switch {
	case bad != "":
		apiError(w, http.StatusBadRequest, "%s", bad)
		return false, false, false
	case userCount && !presence:
		apiError(w, http.StatusBadRequest, "info=%s is available for presence channels only", infoUserCount)
		return false, false, false
	}
	return userCount, subCount, true
}

// countInfo returns the info of a channel with the counts asked for,
// answering the request and returning ok false when presence fails. Both
// count across nodes: of a presence channel from presence, of another
// from subs (see subscriptionCounts).
func (h *Handler) countInfo(w http.ResponseWriter, r *http.Request, app *App, name string, userCount, subCount bool, subs map[string]int) (channelInfo, bool) {
	var info channelInfo
	if !userCount && !subCount {
		return info, true
	}
	if !strings.HasPrefix(name, presencePrefix) {
		if subCount {
			info.SubscriptionCount = ptr(subs[name])
		}
		return info, true
	}
	users, conns, ok := h.presenceCounts(w, r, app, name)
	if !ok {
		return info, false
	}
	if userCount {
		info.UserCount = ptr(len(users))
	}
	if subCount {
		info.SubscriptionCount = ptr(conns)
	}
	return info, true
}

// subscriptionCounts returns, when subCount, the subscription counts of
// the channels among names that are not presence channels, by name: one
// count of every node (Node.Subscribers). It answers the request and
// returns ok false when the count fails.
func (h *Handler) subscriptionCounts(w http.ResponseWriter, r *http.Request, app *App, names []string, subCount bool) (map[string]int, bool) {
	if !subCount {
		return nil, true
	}
	var chans []string
	for _, name := range names {
		if !strings.HasPrefix(name, presencePrefix) && !isServerToUser(name) {
			chans = append(chans, app.channel(name))
		}
	}
	counts, err := h.node.Subscribers(r.Context(), chans)
	if err != nil {
		h.failed(w, "Counting subscriptions", err)
		return nil, false
	}
	out := make(map[string]int, len(counts))
	for _, name := range names {
		if k, ok := counts[app.channel(name)]; ok {
			out[name] = k
		}
	}
	return out, true
}

// presenceCounts returns the users and connections in a presence channel,
// answering the request and returning ok false when presence fails.
func (h *Handler) presenceCounts(w http.ResponseWriter, r *http.Request, app *App, name string) (users []string, conns int, ok bool) {
	infos, err := h.node.Presence(r.Context(), app.channel(name))
	if err != nil {
		h.failed(w, "Reading the presence of "+name, err)
		return nil, 0, false
	}
	seen := make(map[string]bool, len(infos))
	for _, info := range infos {
		user, ok := app.pusherUser(info.User)
		if !ok {
			continue // a redcast client: not the app's
		}
		conns++
		if !seen[user] {
			seen[user] = true
			users = append(users, user)
		}
	}
	slices.Sort(users)
	return users, conns, true
}

// writeJSON answers a request with v in JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// serveChannels lists the app's occupied channels, those starting with
// filter_by_prefix if given, with user_count when the prefix is presence-.
func (h *Handler) serveChannels(w http.ResponseWriter, r *http.Request) {
	app, _ := h.readSigned(w, r)
	if app == nil {
		return
	}
	prefix := r.URL.Query().Get("filter_by_prefix")
	userCount, subCount, ok := queryInfo(w, r, strings.HasPrefix(prefix, presencePrefix))
	if !ok {
		return
	}
	names, err := h.appChannels(r.Context(), app, prefix)
	if err != nil {
		h.failed(w, "Listing channels", err)
		return
	}
	subs, ok := h.subscriptionCounts(w, r, app, names, subCount)
	if !ok {
		return
	}
	channels := make(map[string]channelInfo, len(names))
	for _, name := range names {
		info, ok := h.countInfo(w, r, app, name, userCount, subCount, subs)
		if !ok {
			return
		}
		channels[name] = info
	}
	writeJSON(w, map[string]any{"channels": channels})
}

// appChannels returns the Pusher names of the app's occupied channels that
// start with prefix.
func (h *Handler) appChannels(ctx context.Context, app *App, prefix string) ([]string, error) {
	all, err := h.node.Channels(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ch := range all {
		ns, name, ok := strings.Cut(ch, string(protocol.NamespaceSeparator))
		if !ok || (ns != app.Namespace && ns != app.PresenceNamespace) || !strings.HasPrefix(name, prefix) || isServerToUser(name) {
			continue
		}
		if app.channel(name) == ch {
			names = append(names, name)
		}
	}
	return names, nil
}

// serveChannel answers whether a channel is occupied, with user_count and
// subscription_count of presence channels when info asks.
func (h *Handler) serveChannel(w http.ResponseWriter, r *http.Request) {
	app, _ := h.readSigned(w, r)
	if app == nil {
		return
	}
	name := r.PathValue("channel")
	if validateChannel(name) != nil {
		apiError(w, http.StatusBadRequest, "Invalid channel %q", name)
		return
	}
	presence := strings.HasPrefix(name, presencePrefix)
	userCount, subCount, ok := queryInfo(w, r, presence)
	if !ok {
		return
	}
	var info channelInfo
	if presence {
		// Whether it is occupied is its subscription count.
		if info, ok = h.countInfo(w, r, app, name, userCount, true, nil); !ok {
			return
		}
		info.Occupied = ptr(*info.SubscriptionCount > 0)
		if !subCount {
			info.SubscriptionCount = nil
		}
	} else {
		names, err := h.appChannels(r.Context(), app, name)
		if err != nil {
			h.failed(w, "Listing channels", err)
			return
		}
		subs, ok := h.subscriptionCounts(w, r, app, []string{name}, subCount)
		if !ok {
			return
		}
		if info, ok = h.countInfo(w, r, app, name, false, subCount, subs); !ok {
			return
		}
		info.Occupied = ptr(slices.Contains(names, name))
	}
	writeJSON(w, info)
}

// serveUsers lists the users of a presence channel; 400 for any other.
func (h *Handler) serveUsers(w http.ResponseWriter, r *http.Request) {
	app, _ := h.readSigned(w, r)
	if app == nil {
		return
	}
	name := r.PathValue("channel")
	if validateChannel(name) != nil || !strings.HasPrefix(name, presencePrefix) {
		apiError(w, http.StatusBadRequest, "Users are listed for presence channels only, not %q", name)
		return
	}
	users, _, ok := h.presenceCounts(w, r, app, name)
	if !ok {
		return
	}
	type user struct {
		ID string `json:"id"`
	}
	list := make([]user, len(users))
	for i, u := range users {
		list[i] = user{ID: u}
	}
	writeJSON(w, map[string]any{"users": list})
}

func ptr[T any](v T) *T { return &v }

// eventInfo returns the info of the events reply: the counts info asks
// for of each of channels (user_count of presence channels only; see
// countInfo), answering the request and returning ok false when presence
// fails.
func (h *Handler) eventInfo(w http.ResponseWriter, r *http.Request, app *App, channels []string, userCount, subCount bool) (map[string]channelInfo, bool) {
	subs, ok := h.subscriptionCounts(w, r, app, channels, subCount)
	if !ok {
		return nil, false
	}
	infos := make(map[string]channelInfo, len(channels))
	for _, name := range channels {
		presence := strings.HasPrefix(name, presencePrefix)
		info, ok := h.countInfo(w, r, app, name, userCount && presence, subCount && !isServerToUser(name), subs)
		if !ok {
			return nil, false
		}
		infos[name] = info
	}
	return infos, true
}
