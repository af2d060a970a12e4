package sms

import (
	"errors"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

func TestUpstreamErrorStatusesAndRetryability(t *testing.T) {
	cases := []struct {
		err       huawei.Error
		status    int
		temporary bool
	}{
		{huawei.Error{Kind: huawei.KindNotFound}, http.StatusNotFound, false},
		{huawei.Error{Kind: huawei.KindRefused, Status: 403}, http.StatusBadGateway, false},
		{huawei.Error{Kind: huawei.KindThrottled, Status: 429}, http.StatusBadGateway, true},
		{huawei.Error{Kind: huawei.KindServer, Status: 503}, http.StatusBadGateway, true},
		{huawei.Error{Kind: huawei.KindServer, Status: 501}, http.StatusBadGateway, false},
		{huawei.Error{Kind: huawei.KindBadResponse, Status: 200}, http.StatusBadGateway, false},
		{huawei.Error{Kind: huawei.KindBroken, Status: 503}, http.StatusBadGateway, true},
		{huawei.Error{Kind: huawei.KindUnreachable}, http.StatusBadGateway, true},
		{huawei.Error{Kind: huawei.KindTimeout}, http.StatusGatewayTimeout, true},
		{huawei.Error{Kind: huawei.KindRateLimited}, http.StatusBadGateway, true},
		{huawei.Error{Kind: huawei.KindInternal}, http.StatusInternalServerError, false},
	}
	for _, tc := range cases {
		e := tc.err
		require.Equal(t, tc.status, httpStatus(&e), "%+v", e)
		require.Equal(t, tc.temporary, e.Temporary(), "%+v", e)
		var coded logical.HTTPCodedError
		require.True(t, errors.As(vaultError(&e), &coded), "must cross the plugin boundary as a coded error")
		require.Equal(t, tc.status, coded.Code())
	}
	var coded logical.HTTPCodedError
	require.True(t, errors.As(vaultError(errInternal), &coded))
	require.Equal(t, http.StatusInternalServerError, coded.Code())
}
