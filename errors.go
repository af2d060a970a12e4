package sms

import (
	"errors"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sms-vault/vault-plugin-secrets-sms/internal/huawei"
)

// httpStatus is what a Vault client sees for an upstream failure. Refusals
// are 502, never 403: a Vault client must not mistake SMS's refusal for its
// own ACL denial.
func httpStatus(e *huawei.Error) int {
	switch e.Kind {
	case huawei.KindNotFound:
		return http.StatusNotFound
	case huawei.KindTimeout:
		return http.StatusGatewayTimeout
	case huawei.KindInternal:
		return http.StatusInternalServerError
	case huawei.KindSettling:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadGateway
	}
}

// vaultError converts err for the plugin boundary. CodedError keeps its
// status across gRPC; a wrapped error would become a 500 with its text.
func vaultError(err error) error {
	var e *huawei.Error
	if errors.As(err, &e) {
		return logical.CodedError(httpStatus(e), e.Error())
	}
	if errors.Is(err, errInternal) {
		return logical.CodedError(http.StatusInternalServerError, err.Error())
	}
	return err
}
