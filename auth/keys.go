package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MinRSAKeyBits is the smallest RSA key a Verifier accepts.
const MinRSAKeyBits = 2048

// MinHMACSecretSize is the smallest HMAC secret a Verifier and Mint accept,
// in bytes: RFC 7518 section 3.2 requires a key at least as long as the
// hash (256 bits for HS256).
const MinHMACSecretSize = 32

// ParsePublicKeys parses every PEM block of data: "PUBLIC KEY" (PKIX),
// "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" (the certificate's key). Keys
// must be RSA (at least MinRSAKeyBits) or ECDSA on P-256, P-384 or P-521.
// Several keys let a deployment rotate keys: a token verifies when any key
// of its algorithm accepts it.
func ParsePublicKeys(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		key, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%s): %w", n, block.Type, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM-encoded public key found")
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("data after the last PEM block")
	}
	return keys, nil
}

func parsePEMBlock(b *pem.Block) (crypto.PublicKey, error) {
	var (
		key crypto.PublicKey
		err error
	)
	switch {
	case b.Type == "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(b.Bytes)
	case b.Type == "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case b.Type == "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
			key = cert.PublicKey
		}
	case strings.Contains(b.Type, "PRIVATE KEY"):
		return nil, errors.New("a private key: give redcast the public key only")
	default:
		return nil, errors.New("not a public key or certificate")
	}
	if err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// checkKey accepts the key types and sizes a Verifier can use.
func checkKey(key crypto.PublicKey) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSAKeyBits {
			return fmt.Errorf("RSA key of %d bits: at least %d needed", k.N.BitLen(), MinRSAKeyBits)
		}
		return nil
	case *ecdsa.PublicKey:
		if ecdsaAlgorithm(k) == "" {
			return fmt.Errorf("ECDSA key on curve %s: want P-256, P-384 or P-521", k.Curve.Params().Name)
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T: want RSA or ECDSA", key)
}

// keyAlgorithms returns the algorithms a key verifies.
func keyAlgorithms(key crypto.PublicKey) []string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512"}
	case *ecdsa.PublicKey:
		return []string{ecdsaAlgorithm(k)}
	}
	return nil
}

// ecdsaAlgorithm returns the one algorithm of an ECDSA key's curve (RFC 7518
// section 3.4 ties each ES algorithm to a curve), or "" for another curve.
func ecdsaAlgorithm(k *ecdsa.PublicKey) string {
	switch k.Curve {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}
