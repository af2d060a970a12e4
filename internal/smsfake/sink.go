package smsfake

import (
	"net/http"
	"strings"
	"sync"
)

// Sink is a host that records whatever reaches it: the endpoint a config
// writer might point the engine at to collect its credentials. Tests use it
// to show that nothing does. It answers every request with the gateway's 401.
type Sink struct {
	mu       sync.Mutex
	received []Received
}

// Received is one request that reached a Sink.
type Received struct {
	Method string      `json:"method"`
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
}

// NewSink returns an empty sink.
func NewSink() *Sink { return &Sink{} }

func (k *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r = withBufferedBody(r)
	k.mu.Lock()
	k.received = append(k.received, Received{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: string(bodyOf(r))})
	k.mu.Unlock()
	writeReply(w, smsError(http.StatusUnauthorized, "APIGW.0301", "Incorrect IAM authentication information."))
}

// Received returns every request recorded so far.
func (k *Sink) Received() []Received {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]Received(nil), k.received...)
}

// Contains reports whether any recorded request carried s, in a header or in
// its body.
func (k *Sink) Contains(s string) bool {
	for _, rec := range k.Received() {
		if strings.Contains(rec.Body, s) {
			return true
		}
		for _, vs := range rec.Header {
			for _, v := range vs {
				if strings.Contains(v, s) {
					return true
				}
			}
		}
	}
	return false
}
