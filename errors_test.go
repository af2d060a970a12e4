package sms

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestSanitizeBoundsAndCleansUpstreamText(t *testing.T) {
	scrub := newScrubber([]string{testToken, "abc"}) // too short to scrub
	got := sanitize("line1\nline2\x1b[31m "+testToken+" abc", scrub)
	require.Equal(t, "line1 line2 [31m <redacted> abc", got)

	// Cut at a rune boundary, never inside a multi-byte character.
	long := strings.Repeat("é", 200) // 400 bytes
	got = sanitize(long, nil)
	require.True(t, utf8.ValidString(got))
	require.LessOrEqual(t, len(got), maxUpstreamText+3)
	require.True(t, strings.HasSuffix(got, "..."))
	require.Nil(t, newScrubber(nil))
}

func TestUpstreamErrorStatusesAndRetryability(t *testing.T) {
	cases := []struct {
		err       upstreamError
		status    int
		retryable bool
	}{
		{upstreamError{kind: failNotFound}, http.StatusNotFound, false},
		{upstreamError{kind: failRefused, status: 403}, http.StatusBadGateway, false},
		{upstreamError{kind: failThrottled, status: 429}, http.StatusBadGateway, true},
		{upstreamError{kind: failServer, status: 503}, http.StatusBadGateway, true},
		{upstreamError{kind: failServer, status: 501}, http.StatusBadGateway, false},
		{upstreamError{kind: failBadResponse, status: 200}, http.StatusBadGateway, false},
		{upstreamError{kind: failUnreachable}, http.StatusBadGateway, true},
		{upstreamError{kind: failTimeout}, http.StatusGatewayTimeout, true},
		{upstreamError{kind: failRateLimited}, http.StatusBadGateway, true},
	}
	for _, tc := range cases {
		e := tc.err
		require.Equal(t, tc.status, e.httpStatus(), "%+v", e)
		require.Equal(t, tc.retryable, e.retryable(), "%+v", e)
		coded, ok := vaultError(&e).(logical.HTTPCodedError)
		require.True(t, ok, "must cross the plugin boundary as a coded error")
		require.Equal(t, tc.status, coded.Code())
	}
}
