package sms

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// exchange is one upstream answer with its body read (bounded).
type exchange struct {
	status   int
	header   http.Header
	body     []byte
	tooLarge bool
	attempts int
	request  *http.Request  // as sent, credentials included; never logged
	raw      *http.Response // the answer this was read from
}

func readExchange(resp *http.Response, limit int64) (*exchange, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	ex := &exchange{status: resp.StatusCode, header: resp.Header, request: resp.Request, raw: resp}
	if int64(len(body)) > limit {
		ex.tooLarge = true
		body = nil
	}
	ex.body = body
	return ex, nil
}

func (ex *exchange) requestID() string { return ex.header.Get("X-Request-Id") }

// failure extracts what an error body says, in any of the shapes Huawei Cloud
// services use: {error_code, error_msg}, {code, message} or
// {error: {code, message, title}}. encoded_authorization_message is ignored.
func (ex *exchange) failure(service string, clean func(string) string) *upstreamError {
	ue := &upstreamError{service: service, status: ex.status, requestID: clean(ex.requestID()), attempts: ex.attempts}
	var body struct {
		ErrorCode json.RawMessage `json:"error_code"`
		ErrorMsg  string          `json:"error_msg"`
		Code      json.RawMessage `json:"code"`
		Message   string          `json:"message"`
		RequestID string          `json:"request_id"`
		Error     *struct {
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
			Title   string          `json:"title"`
		} `json:"error"`
	}
	if len(ex.body) > 0 && json.Unmarshal(ex.body, &body) == nil {
		code, msg := rawString(body.ErrorCode), body.ErrorMsg
		if code == "" {
			code = rawString(body.Code)
		}
		if msg == "" {
			msg = body.Message
		}
		if body.Error != nil {
			if code == "" {
				code = rawString(body.Error.Code)
			}
			if msg == "" {
				msg = strings.TrimSpace(body.Error.Title + ": " + body.Error.Message)
			}
		}
		ue.code, ue.message = clean(code), clean(msg)
		if ue.requestID == "" {
			ue.requestID = clean(body.RequestID)
		}
	}
	// A token SMS echoes back must not reach the client either.
	if ex.request != nil {
		if sent := ex.request.Header.Get("X-Auth-Token"); len(sent) >= 4 {
			ue.message = strings.ReplaceAll(ue.message, sent, "<redacted>")
			ue.code = strings.ReplaceAll(ue.code, sent, "<redacted>")
		}
	}
	return ue
}

// rawString reads a JSON string or number as text.
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// transportFailure describes a request that got no usable HTTP answer.
func transportFailure(ctx context.Context, service string, err error, attempts int) *upstreamError {
	var ue *upstreamError
	if errors.As(err, &ue) {
		// Raised by the authenticator (IAM) or the rate limiter.
		cp := *ue
		if cp.attempts == 0 {
			cp.attempts = attempts
		}
		return &cp
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &upstreamError{kind: failTimeout, service: service, attempts: attempts,
			detail: "did not answer within request_timeout"}
	}
	return &upstreamError{kind: failUnreachable, service: service, attempts: attempts,
		detail: "could not be reached: " + describeNetError(err)}
}

func describeNetError(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	msg := sanitize(err.Error(), nil)
	if isCertError(err) {
		msg += " (set ca_cert if the endpoint uses a private CA)"
	}
	return msg
}

func isCertError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verifying *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname) || errors.As(err, &verifying)
}
