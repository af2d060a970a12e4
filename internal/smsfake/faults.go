package smsfake

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Fault modes. Each makes a matching request fail in one of the ways a real
// upstream (or the network to it) can.
const (
	FaultStatus             = "status"               // answer Status with SMS's or the gateway's error body
	FaultResetBeforeHeaders = "reset-before-headers" // close the connection with a TCP reset, no answer
	FaultResetMidBody       = "reset-mid-body"       // send headers and part of the body, then reset
	FaultSlowHeaders        = "slow-headers"         // wait Delay before answering normally
	FaultSlowBody           = "slow-body"            // send headers and half the body, wait Delay, send the rest
	FaultMalformedJSON      = "malformed-json"       // 200 with a truncated JSON body
	FaultOversized          = "oversized"            // 200 with a 70 KiB body
	FaultMismatchedTaskID   = "mismatched-task-id"   // 200 for another task_id
	FaultLongPassphrase     = "long-passphrase"      // 200 with a 300-character passphrase
	FaultRedirect           = "redirect"             // 302 to Location
	FaultEchoToken          = "echo-token"           // 403 whose error_msg repeats the X-Auth-Token received
)

var faultModes = map[string]bool{
	FaultStatus: true, FaultResetBeforeHeaders: true, FaultResetMidBody: true, FaultSlowHeaders: true,
	FaultSlowBody: true, FaultMalformedJSON: true, FaultOversized: true, FaultMismatchedTaskID: true,
	FaultLongPassphrase: true, FaultRedirect: true, FaultEchoToken: true,
}

// Fault makes the stand-in misbehave for matching requests.
type Fault struct {
	Mode       string   `json:"mode"`
	Target     string   `json:"target,omitempty"`      // "sms" (default) or "iam"
	TaskID     string   `json:"task_id,omitempty"`     // only this task; empty matches every task
	Times      int      `json:"times,omitempty"`       // match this many requests, then retire; 0: until cleared
	Status     int      `json:"status,omitempty"`      // FaultStatus
	RetryAfter string   `json:"retry_after,omitempty"` // FaultStatus: Retry-After header value
	Delay      Duration `json:"delay,omitempty"`       // FaultSlowHeaders, FaultSlowBody
	Location   string   `json:"location,omitempty"`    // FaultRedirect

	used int
}

// Duration reads "1.5s" style JSON strings.
type Duration time.Duration

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("delay must be a duration string such as \"2s\"")
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (f *Fault) check() error {
	if !faultModes[f.Mode] {
		return fmt.Errorf("unknown fault mode %q", f.Mode)
	}
	if f.Target == "" {
		f.Target = "sms"
	}
	if f.Target != "sms" && f.Target != "iam" {
		return fmt.Errorf("target must be sms or iam")
	}
	if f.Mode == FaultStatus && (f.Status < 100 || f.Status > 599) {
		return fmt.Errorf("mode status needs a status between 100 and 599")
	}
	return nil
}

// takeFault returns the first fault matching the request, counting its use.
// The caller holds s.mu.
func (s *Server) takeFault(target, taskID string) *Fault {
	for i, f := range s.faults {
		if f.Target != target || (f.TaskID != "" && f.TaskID != taskID) {
			continue
		}
		f.used++
		if f.Times > 0 && f.used >= f.Times {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		cp := *f
		return &cp
	}
	return nil
}

// serve answers a request with the fault. It returns false for delays that
// end in a normal answer, which the caller then writes.
func (f *Fault) serve(w http.ResponseWriter, r *http.Request, taskID string) (handled bool) {
	switch f.Mode {
	case FaultStatus:
		code, msg := standardError(f.Status)
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(w, f.Status, code, msg)
	case FaultResetBeforeHeaders:
		reset(w, "")
	case FaultResetMidBody:
		reset(w, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 120\r\n\r\n{\"task_id\":\""+taskID+"\",\"pass")
	case FaultSlowHeaders:
		if !sleep(r, time.Duration(f.Delay)) {
			return true
		}
		return false
	case FaultSlowBody:
		body, _ := json.Marshal(map[string]string{"task_id": taskID, "passphrase": "slow-passphrase"})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		if sleep(r, time.Duration(f.Delay)) {
			_, _ = w.Write(body[len(body)/2:])
		}
	case FaultMalformedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"task_id": "` + taskID + `", "passphrase": "abc`))
	case FaultOversized:
		writeJSON(w, http.StatusOK, map[string]string{"task_id": taskID, "passphrase": "x", "padding": strings.Repeat("p", 70<<10)})
	case FaultMismatchedTaskID:
		writeJSON(w, http.StatusOK, map[string]string{"task_id": "another-task", "passphrase": "not-yours"})
	case FaultLongPassphrase:
		writeJSON(w, http.StatusOK, map[string]string{"task_id": taskID, "passphrase": strings.Repeat("p", 300)})
	case FaultRedirect:
		w.Header().Set("Location", f.Location)
		w.WriteHeader(http.StatusFound)
	case FaultEchoToken:
		writeError(w, http.StatusForbidden, "SMS.9004", "token "+r.Header.Get("X-Auth-Token")+" may not read this task")
	}
	return true
}

// sleep waits d, or less if the client goes away; it reports whether the
// client is still there.
func sleep(r *http.Request, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

// reset writes raw bytes, if any, then closes the connection with a TCP RST
// (SO_LINGER 0), which a client sees as "connection reset by peer".
func reset(w http.ResponseWriter, raw string) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "this fault needs HTTP/1.1", http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	if raw != "" {
		writeRaw(buf, raw)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	} else if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
	}
	_ = conn.Close()
}

func writeRaw(buf *bufio.ReadWriter, raw string) {
	_, _ = buf.WriteString(raw)
	_ = buf.Flush()
}

func timeDuration(d Duration) time.Duration { return time.Duration(d) }
