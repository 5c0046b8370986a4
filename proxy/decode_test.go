package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The reply bodies of Centrifugo's proxy documentation, which a backend
// written for Centrifugo sends: each must decode as the docs mean it.
func TestDecodeDocumentedReplies(t *testing.T) {
	res, err := Decode[ConnectResult]([]byte(`{"result": {"user": "56", "expire_at": 1565436268, "info": {"name": "Alex"}, "channels": ["news"], "b64data": "eyJ4IjoxfQ=="}}`))
	if err != nil || res.User != "56" || res.ExpireAt != 1565436268 || string(res.Info) != `{"name": "Alex"}` ||
		len(res.Channels) != 1 || string(res.Data) != `{"x":1}` {
		t.Errorf("connect result %+v, %v", res, err)
	}
	_, err = Decode[ConnectResult]([]byte(`{"error": {"code": 1000, "message": "custom error"}}`))
	if e, ok := errors.AsType[*Error](err); !ok || e.Code != 1000 || e.Message != "custom error" {
		t.Errorf("connect error: %v", err)
	}
	_, err = Decode[ConnectResult]([]byte(`{"disconnect": {"code": 4500, "reason": "disconnect reason"}}`))
	if d, ok := errors.AsType[*Disconnect](err); !ok || d.Code != 4500 || d.Reason != "disconnect reason" {
		t.Errorf("connect disconnect: %v", err)
	}
	ref, err := Decode[RefreshResult]([]byte(`{"result": {"expired": true}}`))
	if err != nil || !ref.Expired {
		t.Errorf("refresh result %+v, %v", ref, err)
	}
	sub, err := Decode[SubscribeResult]([]byte(`{"result": {}}`))
	if err != nil || sub == nil {
		t.Errorf("subscribe result %+v, %v", sub, err)
	}
	pub, err := Decode[PublishResult]([]byte(`{"result": {"data": {"input": "hello", "id": 7}}}`))
	if err != nil || string(pub.Data) != `{"input": "hello", "id": 7}` {
		t.Errorf("publish result %+v, %v", pub, err)
	}
	rpc, err := Decode[RPCResult]([]byte(`{"result": {"data": {"answer": "2019"}}}`))
	if err != nil || string(rpc.Data) != `{"answer": "2019"}` {
		t.Errorf("rpc result %+v, %v", rpc, err)
	}
}

func TestDecodeBadReplies(t *testing.T) {
	for _, body := range []string{
		``, `null`, `[]`, `"x"`, `<html>`, `{"result": 5}`, `{"result": {"user": 5}}`,
		`{"result": {"info": [1]}}`, `{"result": {"b64info": "%%%"}}`, `{"result": {"b64data": "bm90IGpzb24="}}`,
		`{"result": {"expire_at": -1}}`, `{"error": "x"}`, `{"result": {"data": 1, "b64data": "MQ=="}}`,
		`{"result": {}`, strings.Repeat(" ", MaxReplySize+1),
	} {
		_, err := Decode[ConnectResult]([]byte(body))
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue.Reason != ReasonBadReply || !errors.Is(err, ErrUnavailable) {
			t.Errorf("Decode(%.40q) = %v, want a bad reply", body, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"result": {"user": "56", "expire_at": 1565436268, "info": {"name": "Alex"}, "channels": ["news"]}}`,
		`{"result": {"b64info": "eyJ4IjoxfQ==", "b64data": "MQ=="}}`,
		`{"error": {"code": 1000, "message": "custom error", "temporary": true}}`,
		`{"disconnect": {"code": 4500, "reason": "bye"}}`,
		`{"result": {"expired": true, "expire_at": 5}}`,
		`{"result": {"data": null, "skip_history": true}}`,
		`{"result": {"data": "x"}, "error": null}`,
		`{}`, `[]`, `{"result": {"info": "x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(err error, info, data json.RawMessage) {
			var (
				ue *UnavailableError
				be *Error
				bd *Disconnect
			)
			switch {
			case err == nil:
				if len(info) > 0 && (!json.Valid(info) || bytes.TrimSpace(info)[0] != '{') {
					t.Fatalf("accepted info %q", info)
				}
				if len(data) > 0 && !json.Valid(data) {
					t.Fatalf("accepted data %q", data)
				}
			case errors.As(err, &ue):
				if ue.Reason != ReasonBadReply {
					t.Fatalf("reason %s", ue.Reason)
				}
			case errors.As(err, &be):
				if len(be.Message) > MaxMessageSize {
					t.Fatalf("message of %d bytes", len(be.Message))
				}
			case errors.As(err, &bd):
				if len(bd.Reason) > MaxMessageSize {
					t.Fatalf("reason of %d bytes", len(bd.Reason))
				}
			default:
				t.Fatalf("unexpected error %T %v", err, err)
			}
		}
		if r, err := Decode[ConnectResult](body); err == nil {
			check(nil, r.Info, r.Data)
		} else {
			check(err, nil, nil)
		}
		if r, err := Decode[RefreshResult](body); err == nil {
			check(nil, r.Info, nil)
		} else {
			check(err, nil, nil)
		}
		if r, err := Decode[SubscribeResult](body); err == nil {
			check(nil, r.Info, r.Data)
		} else {
			check(err, nil, nil)
		}
		if r, err := Decode[PublishResult](body); err == nil {
			check(nil, nil, r.Data)
		} else {
			check(err, nil, nil)
		}
		if r, err := Decode[RPCResult](body); err == nil {
			check(nil, nil, r.Data)
		} else {
			check(err, nil, nil)
		}
	})
}
