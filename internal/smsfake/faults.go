package smsfake

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault modes: what the stand-in answers instead of (or on top of) the normal
// answer. Each is a way a real upstream, its gateway or the network can fail.
const (
	// FaultStatus answers Status (SMS's or the gateway's error body for that
	// status; a 2xx Status keeps the normal answer), shaped by Body.
	FaultStatus = "status"
	// FaultResetBeforeHeaders closes the connection with a TCP reset (HTTP/2:
	// RST_STREAM) before any answer.
	FaultResetBeforeHeaders = "reset-before-headers"
	// FaultSlowHeaders waits Delay, then answers normally (or as Status says).
	FaultSlowHeaders = "slow-headers"
	// FaultEchoCredentials answers Status (default 403) with an error_msg that
	// quotes back every credential the request carried: X-Auth-Token,
	// X-Security-Token, the Authorization header and, for IAM, the password.
	// EchoPrefix > 0 quotes only that many leading characters of each.
	FaultEchoCredentials = "echo-credentials"
	// FaultRedirect answers 302 to Location.
	FaultRedirect = "redirect"

	// Faults of an IAM call that changes something (create-key, delete-key,
	// change-password), where the change and its answer part ways.
	//
	// FaultAppliedStatus carries the request out, then answers Status
	// (default 504) with the gateway's error body in place of IAM's answer:
	// a gateway that gave up on IAM after IAM had done it.
	FaultAppliedStatus = "applied-status"
	// FaultApplyLate sends no answer until the client gives up (its
	// deadline), or answers Status at once when one is set (a gateway's
	// 504), and carries the request out Delay after that, whatever became of
	// the answer: IAM applying a change after the answer's deadline, or
	// creating a key late. Stats.IAMAppliedLate counts those carried out.
	FaultApplyLate = "apply-late"

	// Content faults of the passphrase call, all with status 200.
	FaultMalformedJSON    = "malformed-json"     // a truncated JSON document
	FaultOversized        = "oversized"          // a 70 KiB body
	FaultMismatchedTaskID = "mismatched-task-id" // the answer of another task
	FaultLongPassphrase   = "long-passphrase"    // a 300-character passphrase

	// Content faults of the certkey call, with status 200.
	FaultMalformedPEM = "malformed-pem" // a cert that is not PEM
	FaultKeyAsCert    = "key-as-cert"   // a private key where the certificate belongs
	FaultExpiredCert  = "expired-cert"  // certificates that expired an hour ago
	// A private key's bytes under a CERTIFICATE label: well-formed PEM of the
	// right type, no certificate.
	FaultKeyInCertBlock   = "key-in-cert-block"   // as cert
	FaultKeyAfterMgmtCert = "key-after-mgmt-cert" // after target_mgmt_cert's certificate, as a chain
	FaultKeyInCABlock     = "key-in-ca-block"     // as ca (asked with enable_ca_cert)

	// Content fault of the task list: a count that says there are only as
	// many tasks as this page holds.
	FaultUndercount = "undercount"

	// FaultHiddenCharacters answers Status (default 400) with HiddenCharacters
	// in error_code, error_msg and X-Request-Id, on SMS or IAM; error_msg
	// also quotes back every credential the request carried, with a hidden
	// character between each two of its characters.
	FaultHiddenCharacters = "hidden-characters"

	// Older names, kept for the control API: the normal answer shaped by Body.
	FaultResetMidBody = "reset-mid-body" // = status 200, body reset
	FaultSlowBody     = "slow-body"      // = status 200, body slow
	FaultEchoToken    = "echo-token"     // = echo-credentials
)

// Body shapes: how the chosen answer's body travels. Any of them combines with
// any status, on SMS and IAM alike.
const (
	BodyWhole       = ""             // as it is
	BodyTruncate    = "truncate"     // Content-Length of the whole, half of it sent, then the connection (stream) is aborted
	BodyReset       = "reset"        // half of it, then a TCP reset (HTTP/2: RST_STREAM)
	BodyCorruptGzip = "corrupt-gzip" // Content-Encoding: gzip over bytes that are not gzip
	BodyShortLength = "short-length" // a Content-Length shorter than the body that follows (HTTP/1.1)
	BodySlow        = "slow"         // half of it, a pause of Delay, then the rest
	BodyHuge        = "huge"         // Size bytes (default 8 MiB) of padding after the answer
	BodyHold        = "hold"         // half of it, then nothing until Server.Release (or the client leaves), then the rest
	BodyDrop        = "drop"         // nothing: the request was carried out, its answer is lost (connection reset)
)

var (
	faultModes = map[string]bool{
		FaultStatus: true, FaultResetBeforeHeaders: true, FaultSlowHeaders: true, FaultEchoCredentials: true,
		FaultRedirect: true, FaultMalformedJSON: true, FaultOversized: true, FaultMismatchedTaskID: true,
		FaultLongPassphrase: true, FaultResetMidBody: true, FaultSlowBody: true, FaultEchoToken: true,
		FaultMalformedPEM: true, FaultKeyAsCert: true, FaultExpiredCert: true, FaultUndercount: true,
		FaultKeyInCertBlock: true, FaultKeyAfterMgmtCert: true, FaultKeyInCABlock: true,
		FaultHiddenCharacters: true, FaultAppliedStatus: true, FaultApplyLate: true,
	}
	bodyShapes = map[string]bool{
		BodyWhole: true, BodyTruncate: true, BodyReset: true, BodyCorruptGzip: true,
		BodyShortLength: true, BodySlow: true, BodyHuge: true, BodyHold: true, BodyDrop: true,
	}
)

// Fault makes the stand-in misbehave for matching requests.
type Fault struct {
	Mode       string   `json:"mode"`
	Target     string   `json:"target,omitempty"`      // "sms" (default) or "iam"
	Call       string   `json:"call,omitempty"`        // only this call: sms "passphrase", "task", "tasks", "certkey"; iam "token", "show-key", "list-keys", "create-key", "delete-key", "change-password", "id-token", "security-token"; empty matches every call of the target
	TaskID     string   `json:"task_id,omitempty"`     // only this task; empty matches every request of the target
	Times      int      `json:"times,omitempty"`       // match this many requests, then retire; 0: until cleared
	Status     int      `json:"status,omitempty"`      // FaultStatus, FaultEchoCredentials
	RetryAfter string   `json:"retry_after,omitempty"` // a Retry-After header on the answer
	Delay      Duration `json:"delay,omitempty"`       // FaultSlowHeaders, BodySlow
	Location   string   `json:"location,omitempty"`    // FaultRedirect
	Body       string   `json:"body,omitempty"`        // a Body* shape
	Size       int      `json:"size,omitempty"`        // BodyHuge
	EchoPrefix int      `json:"echo_prefix,omitempty"` // FaultEchoCredentials

	used    int
	release <-chan struct{} // BodyHold: closed by Server.Release
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
	if !bodyShapes[f.Body] {
		return fmt.Errorf("unknown body shape %q", f.Body)
	}
	switch f.Mode {
	case FaultResetMidBody:
		f.Mode, f.Body = FaultStatus, BodyReset
	case FaultSlowBody:
		f.Mode, f.Body = FaultStatus, BodySlow
	case FaultEchoToken:
		f.Mode = FaultEchoCredentials
	}
	if f.Target == "" {
		f.Target = "sms"
	}
	if f.Target != "sms" && f.Target != "iam" {
		return fmt.Errorf("target must be sms or iam")
	}
	if f.Target == "sms" {
		switch f.Call {
		case "", callPassphrase, callTask, callTasks, callCertKey:
		default:
			return fmt.Errorf("an sms call must be passphrase, task, tasks or certkey")
		}
	} else {
		switch f.Call {
		case "", callToken, callShowKey, callListKeys, callCreateKey, callDeleteKey, callChangePassword, callIDToken, callSecurityToken:
		default:
			return fmt.Errorf("an iam call must be token, show-key, list-keys, create-key, delete-key, change-password, id-token or security-token")
		}
	}
	if f.Mode == FaultApplyLate && f.Target != "iam" {
		return fmt.Errorf("mode %s is for IAM calls (target iam)", f.Mode)
	}
	if f.Mode == FaultAppliedStatus && f.Status == 0 {
		f.Status = http.StatusGatewayTimeout
	}
	if f.Mode == FaultStatus && f.Status == 0 && f.Body != BodyWhole {
		f.Status = http.StatusOK
	}
	if (f.Mode == FaultStatus || f.Status != 0) && (f.Status < 100 || f.Status > 599) {
		return fmt.Errorf("mode %s needs a status between 100 and 599", f.Mode)
	}
	return nil
}

// takeFault returns the first fault matching the request, counting its use.
// The caller holds s.mu.
func (s *Server) takeFault(target, call, taskID string) *Fault {
	for i, f := range s.faults {
		if f.Target != target || (f.TaskID != "" && f.TaskID != taskID) || (f.Call != "" && f.Call != call) {
			continue
		}
		f.used++
		if f.Times > 0 && f.used >= f.Times {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		cp := *f
		cp.release = s.release
		return &cp
	}
	return nil
}

// reply is an answer before it is delivered, so that a fault can replace or
// reshape it.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func jsonReply(status int, v any) reply {
	body, _ := json.Marshal(v)
	return reply{status: status, header: http.Header{"Content-Type": {"application/json"}}, body: append(body, '\n')}
}

// before applies the part of a fault that comes before the normal answer is
// computed. It reports false when the request is over (the connection was
// reset, or the client went away while the fault made it wait).
func (f *Fault) before(w http.ResponseWriter, r *http.Request) bool {
	if f == nil {
		return true
	}
	switch f.Mode {
	case FaultResetBeforeHeaders:
		abort(w, nil)
		return false
	case FaultSlowHeaders:
		return sleep(r, time.Duration(f.Delay))
	}
	return true
}

// undercount rewrites a task list's count to the number of tasks on the page.
func undercount(normal reply) reply {
	var body struct {
		Count int              `json:"count"`
		Tasks []map[string]any `json:"tasks"`
	}
	if json.Unmarshal(normal.body, &body) != nil {
		return normal
	}
	body.Count = len(body.Tasks)
	return jsonReply(normal.status, body)
}

// replaces reports whether the fault answers instead of the normal answer, so
// that the stand-in skips computing it (and its side effects: issued tokens,
// counted logins and authentications).
func (f *Fault) replaces() bool {
	if f == nil {
		return false
	}
	switch f.Mode {
	case FaultStatus, FaultSlowHeaders:
		return f.Status != 0 && (f.Status < 200 || f.Status > 299)
	case FaultUndercount, FaultAppliedStatus:
		return false // it rewrites the normal answer, or answers after it
	}
	return true
}

// apply turns the normal answer into the one the fault calls for.
// errorFor builds the service's error body for a status; now is the
// stand-in's clock.
func (f *Fault) apply(r *http.Request, call string, normal reply, taskID string, errorFor func(status int, code, msg string) reply, now time.Time) reply {
	if f == nil {
		return normal
	}
	rep := normal
	switch f.Mode {
	case FaultStatus, FaultSlowHeaders, FaultAppliedStatus:
		if f.Status != 0 && (f.Status < 200 || f.Status > 299) {
			code, msg := standardError(f.Status)
			rep = errorFor(f.Status, code, msg)
		}
	case FaultEchoCredentials:
		status := f.Status
		if status == 0 {
			status = http.StatusForbidden
		}
		rep = errorFor(status, "SMS.9004", "request not allowed for "+strings.Join(echoed(r, f.EchoPrefix), " and "))
	case FaultRedirect:
		rep = reply{status: http.StatusFound, header: http.Header{"Location": {f.Location}}}
	case FaultMalformedJSON:
		rep = reply{status: http.StatusOK, header: http.Header{"Content-Type": {"application/json"}},
			body: []byte(`{"task_id": "` + taskID + `", "passphrase": "abc`)}
	case FaultOversized:
		rep = jsonReply(http.StatusOK, map[string]string{"task_id": taskID, "passphrase": "x", "padding": strings.Repeat("p", 70<<10)})
	case FaultMismatchedTaskID:
		if call == callTask {
			rep = jsonReply(http.StatusOK, taskBody("another-task", TaskMeta{Name: "not-yours", EnterpriseProjectID: "0"}))
		} else {
			rep = jsonReply(http.StatusOK, map[string]string{"task_id": "another-task", "passphrase": "not-yours"})
		}
	case FaultLongPassphrase:
		rep = jsonReply(http.StatusOK, map[string]string{"task_id": taskID, "passphrase": strings.Repeat("p", 300)})
	case FaultMalformedPEM, FaultKeyAsCert, FaultExpiredCert, FaultKeyInCertBlock, FaultKeyAfterMgmtCert, FaultKeyInCABlock:
		rep = certKeyFault(f.Mode, taskID, now)
	case FaultUndercount:
		rep = undercount(normal)
	case FaultHiddenCharacters:
		rep = hiddenCharactersError(r, f.Status, errorFor)
	}
	if f.RetryAfter != "" {
		rep.header = rep.header.Clone()
		if rep.header == nil {
			rep.header = http.Header{}
		}
		rep.header.Set("Retry-After", f.RetryAfter)
	}
	return rep
}

// echoed lists the credentials a request carried, as an upstream that quotes
// them back in an error would.
func echoed(r *http.Request, prefix int) []string {
	var out []string
	add := func(v string) {
		if v == "" {
			return
		}
		if prefix > 0 && len(v) > prefix {
			v = v[:prefix]
		}
		out = append(out, v)
	}
	add(r.Header.Get("X-Auth-Token"))
	add(r.Header.Get("X-Security-Token"))
	add(r.Header.Get("Authorization"))
	if r.Body != nil && r.Method == http.MethodPost {
		var tr tokenRequest
		if json.Unmarshal(bodyOf(r), &tr) == nil {
			add(tr.Auth.Identity.Password.User.Password)
		}
		var pr passwordRequest
		if json.Unmarshal(bodyOf(r), &pr) == nil {
			add(pr.User.OriginalPassword)
			add(pr.User.Password)
		}
	}
	if len(out) == 0 {
		out = append(out, "an anonymous caller")
	}
	return out
}

// deliver writes rep, its body shaped as the fault says.
func (f *Fault) deliver(w http.ResponseWriter, r *http.Request, rep reply) {
	shape, delay, size := BodyWhole, time.Duration(0), 0
	if f != nil {
		shape, delay, size = f.Body, time.Duration(f.Delay), f.Size
	}
	for k, vs := range rep.header {
		w.Header()[k] = vs
	}
	body := rep.body
	half := len(body) / 2

	switch shape {
	case BodyWhole:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rep.status)
		_, _ = w.Write(body)
	case BodyTruncate:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)+64))
		w.WriteHeader(rep.status)
		_, _ = w.Write(body[:half])
		flush(w)
		abort(w, nil)
	case BodyReset:
		if r.ProtoMajor == 1 {
			var raw bytes.Buffer
			fmt.Fprintf(&raw, "HTTP/1.1 %d %s\r\n", rep.status, http.StatusText(rep.status))
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_ = w.Header().Write(&raw)
			raw.WriteString("\r\n")
			raw.Write(body[:half])
			abort(w, raw.Bytes())
			return
		}
		w.WriteHeader(rep.status)
		_, _ = w.Write(body[:half])
		flush(w)
		abort(w, nil)
	case BodyCorruptGzip:
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Del("Content-Length")
		w.WriteHeader(rep.status)
		// A gzip magic number and method, then bytes that are no deflate stream.
		_, _ = w.Write(append([]byte{0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0xff}, bytes.Repeat([]byte{0xff}, 64)...))
	case BodyShortLength:
		if r.ProtoMajor != 1 {
			// HTTP/2 frames the body itself; the nearest fault is a truncation.
			(&Fault{Body: BodyTruncate}).deliver(w, r, rep)
			return
		}
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "HTTP/1.1 %d %s\r\n", rep.status, http.StatusText(rep.status))
		w.Header().Set("Content-Length", strconv.Itoa(half))
		_ = w.Header().Write(&raw)
		raw.WriteString("\r\n")
		raw.Write(body)
		hijackWrite(w, raw.Bytes())
	case BodySlow:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rep.status)
		_, _ = w.Write(body[:half])
		flush(w)
		if sleep(r, delay) {
			_, _ = w.Write(body[half:])
		}
	case BodyDrop:
		abort(w, nil)
	case BodyHold:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rep.status)
		_, _ = w.Write(body[:half])
		flush(w)
		select {
		case <-f.release:
			_, _ = w.Write(body[half:])
		case <-r.Context().Done():
		}
	case BodyHuge:
		if size <= 0 {
			size = 8 << 20
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rep.status)
		_, _ = w.Write(body)
		chunk := bytes.Repeat([]byte(" "), 32<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}
}

func flush(w http.ResponseWriter) {
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
}

// sleep waits d, or less if the client goes away; it reports whether the
// client is still there.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// abort ends the exchange abruptly. On HTTP/1.1 it writes raw bytes, if any,
// then closes the connection with a TCP RST (SO_LINGER 0), which a client sees
// as "connection reset by peer". On HTTP/2, where a handler cannot reach the
// connection, it resets the stream (RST_STREAM), which is what a client sees
// there.
func abort(w http.ResponseWriter, raw []byte) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if len(raw) > 0 {
		writeRaw(buf, raw)
	}
	setLingerZero(conn)
	_ = conn.Close()
}

// hijackWrite writes raw bytes on an HTTP/1.1 connection and closes it.
func hijackWrite(w http.ResponseWriter, raw []byte) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	writeRaw(buf, raw)
	_ = conn.Close()
}

func setLingerZero(conn net.Conn) {
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0)
	} else if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
		if tcp, ok := tc.NetConn().(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
	}
}

func writeRaw(buf *bufio.ReadWriter, raw []byte) {
	_, _ = buf.Write(raw)
	_ = buf.Flush()
}

func timeDuration(d Duration) time.Duration { return time.Duration(d) }
