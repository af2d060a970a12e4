package smsfake

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
)

// Issuer is an OpenID Connect issuer for tests: it signs ID tokens with one
// key (RS256 or ES256) and publishes the key as the JWKS document an
// identity provider in IAM is given. Kubernetes' service-account issuer and
// Vault's plugin identity token issuer play this part for real.
type Issuer struct {
	kid string
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

// NewIssuer makes an issuer with a new key: alg is "RS256" or "ES256".
func NewIssuer(kid, alg string) (*Issuer, error) {
	switch alg {
	case "RS256":
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return &Issuer{kid: kid, rsa: k}, nil
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return &Issuer{kid: kid, ec: k}, nil
	}
	return nil, fmt.Errorf("unsupported alg %q", alg)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// JWK is the issuer's public key as a JSON Web Key.
func (s *Issuer) JWK() map[string]string {
	if s.rsa != nil {
		return map[string]string{"kty": "RSA", "kid": s.kid, "alg": "RS256", "use": "sig",
			"n": b64url(s.rsa.N.Bytes()), "e": b64url(big.NewInt(int64(s.rsa.E)).Bytes())}
	}
	point, err := s.ec.PublicKey.Bytes() // 0x04, X, Y
	if err != nil {
		panic(err) // a P-256 key always encodes
	}
	return map[string]string{"kty": "EC", "kid": s.kid, "crv": "P-256", "alg": "ES256",
		"x": b64url(point[1:33]), "y": b64url(point[33:])}
}

// JWKS is the JWKS document of some issuers' keys.
func JWKS(issuers ...*Issuer) json.RawMessage {
	keys := []map[string]string{}
	for _, s := range issuers {
		keys = append(keys, s.JWK())
	}
	raw, _ := json.Marshal(map[string]any{"keys": keys})
	return raw
}

// Sign makes a compact JWS of the claims.
func (s *Issuer) Sign(claims map[string]any) (string, error) {
	alg := "RS256"
	if s.ec != nil {
		alg = "ES256"
	}
	h, _ := json.Marshal(map[string]string{"alg": alg, "kid": s.kid, "typ": "JWT"})
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64url(h) + "." + b64url(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	if s.rsa != nil {
		if sig, err = rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA256, digest[:]); err != nil {
			return "", err
		}
	} else {
		r, ss, err := ecdsa.Sign(rand.Reader, s.ec, digest[:])
		if err != nil {
			return "", err
		}
		sig = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	}
	return input + "." + b64url(sig), nil
}
