package smsfake

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every IAM call that changes something can be applied behind a gateway's
// 504, or applied after the client gave up, or reset before IAM sees it.
func TestChangesAppliedBehindAGatewayErrorOrLate(t *testing.T) {
	e := newKeyEnv(t, func(o *Options) { o.MaxKeysPerUser = 5 })
	alice := UserID("d", "alice")
	asAlice := e.signed(aliceAK, aliceSK)

	require.Error(t, e.s.AddFault(Fault{Mode: FaultApplyLate, Target: "sms", Call: callPassphrase}), "apply-late is for IAM")

	// Applied, then a 504 with the gateway's body.
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultAppliedStatus, Target: "iam", Call: callCreateKey, Times: 1}))
	status, body := e.call("POST", credentialsPath, createBody(alice), asAlice)
	require.Equal(t, http.StatusGatewayTimeout, status)
	iamMessage(t, http.StatusGatewayTimeout, body)
	require.Len(t, e.s.Keys("d", "alice"), 2, "the key was created behind the 504")
	newAK := e.s.Keys("d", "alice")[1].Access
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultAppliedStatus, Target: "iam", Call: callDeleteKey, Status: 502, Times: 1}))
	status, _ = e.call("DELETE", credentialsPath+"/"+newAK, "", asAlice)
	require.Equal(t, http.StatusBadGateway, status)
	require.Len(t, e.s.Keys("d", "alice"), 1, "deleted behind the 502")

	// Reset before IAM sees it: nothing changes.
	tok := e.token("alice", "Old-pass1")
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultResetBeforeHeaders, Target: "iam", Call: callChangePassword, Times: 1}))
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(passwordRequestOf(t, e, alice, tok, "New-pass2"))
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	require.Equal(t, "Old-pass1", e.s.Password("d", "alice"))

	// Applied after the client's deadline: no answer, the change comes later.
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultApplyLate, Target: "iam", Call: callChangePassword, Delay: Duration(20 * time.Millisecond), Times: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	resp, err = http.DefaultClient.Do(passwordRequestOf(t, e, alice, tok, "New-pass2").WithContext(ctx))
	if resp != nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Eventually(t, func() bool { return e.s.Password("d", "alice") == "New-pass2" }, 5*time.Second, 5*time.Millisecond)
	require.EqualValues(t, 1, e.s.Stats().IAMAppliedLate)

	// A key created late, behind a 504 answered at once.
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultApplyLate, Target: "iam", Call: callCreateKey, Status: 504, Delay: Duration(20 * time.Millisecond), Times: 1}))
	status, _ = e.call("POST", credentialsPath, createBody(alice), asAlice)
	require.Equal(t, http.StatusGatewayTimeout, status)
	require.Eventually(t, func() bool { return len(e.s.Keys("d", "alice")) == 2 }, 5*time.Second, 5*time.Millisecond)
}

func TestLockoutsAreCounted(t *testing.T) {
	e := newKeyEnv(t, func(o *Options) { o.LockoutAfter = 2 })
	status, _, _ := e.login("alice", "wrong-pass1")
	require.Equal(t, http.StatusUnauthorized, status)
	status, _, _ = e.login("alice", "Old-pass1")
	require.Equal(t, http.StatusCreated, status, "a success resets the count")
	e.login("alice", "wrong-pass1")
	require.Zero(t, e.s.Stats().IAMLockouts)
	e.login("alice", "wrong-pass1")
	require.EqualValues(t, 1, e.s.Stats().IAMLockouts)
}

func passwordRequestOf(t *testing.T, e *keyEnv, userID, tok, next string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+"/v3/users/"+userID+"/password",
		strings.NewReader(`{"user":{"original_password":"Old-pass1","password":"`+next+`"}}`))
	require.NoError(t, err)
	req.Header.Set("X-Auth-Token", tok)
	return req
}

// The ID-token exchange and securitytokens are IAM calls like the others:
// a fault can target each alone, so that a test can fail one while the
// other works.
func TestFaultsTargetTheIDTokenAndSecurityTokenCalls(t *testing.T) {
	e := newKeyEnv(t, nil)
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "iam", Call: callIDToken, Status: 503, Times: 1}))
	require.NoError(t, e.s.AddFault(Fault{Mode: FaultStatus, Target: "iam", Call: callSecurityToken, Status: 502, Times: 1}))
	status, _, body := e.exchange("k8s", "x.y.z")
	require.Equal(t, http.StatusServiceUnavailable, status)
	iamMessage(t, http.StatusServiceUnavailable, body)
	status, _ = e.call(http.MethodPost, securityTokensPath, assumeBody("a", "domain_name", "d2", 900, "session-1"), e.signed(aliceAK, aliceSK))
	require.Equal(t, http.StatusBadGateway, status)
	require.EqualValues(t, 2, e.s.Stats().Faults)
}
