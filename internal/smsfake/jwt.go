package smsfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"
)

// The stand-in checks ID tokens itself, with nothing but the standard
// library, the way IAM checks them against the JWKS document pasted into an
// identity provider's configuration: IAM never fetches keys from the issuer.

// jwks is a parsed JWKS document: public keys by key ID.
type jwks map[string]crypto.PublicKey

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads RSA and P-256 keys; other key types are refused, as IAM
// refuses a document it cannot use.
func parseJWKS(doc []byte) (jwks, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		return nil, fmt.Errorf("the JWKS document is not JSON: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the JWKS document has no keys")
	}
	out := jwks{}
	for _, k := range set.Keys {
		if k.Kid == "" {
			return nil, errors.New("every JWKS key needs a kid")
		}
		switch k.Kty {
		case "RSA":
			n, errN := b64int(k.N)
			e, errE := b64int(k.E)
			if errN != nil || errE != nil || !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
				return nil, fmt.Errorf("JWKS key %q: not a usable RSA key (2048 bits or more)", k.Kid)
			}
			out[k.Kid] = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			x, errX := base64.RawURLEncoding.DecodeString(k.X)
			y, errY := base64.RawURLEncoding.DecodeString(k.Y)
			if k.Crv != "P-256" || errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("JWKS key %q: not a P-256 key", k.Kid)
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				return nil, fmt.Errorf("JWKS key %q: not a point on P-256", k.Kid)
			}
			out[k.Kid] = pub
		default:
			return nil, fmt.Errorf("JWKS key %q: key type %q is not supported", k.Kid, k.Kty)
		}
	}
	return out, nil
}

func b64int(s string) (*big.Int, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) == 0 {
		return nil, errors.New("bad base64url integer")
	}
	return new(big.Int).SetBytes(raw), nil
}

// idClaims are the claims IAM looks at.
type idClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   *int64   `json:"exp"`
	NotBef   *int64   `json:"nbf"`
}

// audience is "aud": one string or an array of them.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New(`"aud" is neither a string nor an array of strings`)
	}
	*a = many
	return nil
}

// tokenError is why an ID token is refused, with the HTTP status IAM gives:
// 400 for a token that is not a JWT at all, 401 for one that is not good.
type tokenError struct {
	status int
	msg    string
}

func (e *tokenError) Error() string { return e.msg }

func malformed(msg string) error    { return &tokenError{status: 400, msg: msg} }
func unauthorized(msg string) error { return &tokenError{status: 401, msg: msg} }

// verifyIDToken checks a compact JWS against keys, issuer, client IDs and
// the clock, and returns its claims.
func verifyIDToken(token string, keys jwks, issuer string, clientIDs []string, now time.Time) (*idClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, malformed("the ID token is not a compact JWS")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(rawHeader, &header) != nil {
		return nil, malformed("the ID token's header is not base64url JSON")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, malformed("the ID token's payload is not base64url")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, malformed("the ID token's signature is not base64url")
	}

	key, ok := keys[header.Kid]
	if !ok {
		return nil, unauthorized("the ID token is signed with a key the identity provider does not have")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch pub := key.(type) {
	case *rsa.PublicKey:
		if header.Alg != "RS256" || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
			return nil, unauthorized("the ID token's signature is not valid")
		}
	case *ecdsa.PublicKey:
		if header.Alg != "ES256" || len(sig) != 64 ||
			!ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return nil, unauthorized("the ID token's signature is not valid")
		}
	default:
		return nil, unauthorized("the ID token's signature is not valid")
	}

	var c idClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, malformed("the ID token's claims are not JSON")
	}
	switch {
	case c.Issuer != issuer:
		return nil, unauthorized("the ID token's issuer is not the identity provider's")
	case !slices.ContainsFunc(c.Audience, func(a string) bool { return slices.Contains(clientIDs, a) }):
		return nil, unauthorized("the ID token's audience is not a client ID of the identity provider")
	case c.Expiry == nil || !now.Before(time.Unix(*c.Expiry, 0)):
		return nil, unauthorized("the ID token has expired")
	case c.NotBef != nil && now.Before(time.Unix(*c.NotBef, 0)):
		return nil, unauthorized("the ID token is not valid yet")
	case c.Subject == "":
		return nil, unauthorized(`the ID token has no "sub"`)
	}
	return &c, nil
}
