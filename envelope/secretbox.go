package envelope

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/phivault/phivault"
)

// secretBox seals small secrets (account credentials, triage notes) with
// AES-256-GCM under the newest version of one DEK of its own, keyID,
// stored in the keys table like every DEK (so a KEK rotation rewraps it).
// The additional data binds each value to the box's purpose (ad), an id
// and a field, so a sealed value copied elsewhere fails to open.
type secretBox struct {
	store  phivault.Store
	sealer *Sealer
	keyID  string // the DEK's id, e.g. AccountsKeyID
	ad     string // prefix of the additional data
	what   string // what it seals, for errors: "credential"
}

// currentDEK returns the newest version of the box's DEK, creating it if
// there is none.
func (b *secretBox) currentDEK(ctx context.Context) (*keyEntry, error) {
	var e *keyEntry
	err := b.store.View(ctx, func(tx phivault.StoreTx) error {
		vs, err := tx.KeyVersions(ctx, b.keyID)
		if err != nil {
			return err
		} else if len(vs) == 0 {
			return phivault.ErrNotFound
		}
		e, err = b.sealer.entry(ctx, vs[len(vs)-1])
		return err
	})
	if errors.Is(err, phivault.ErrNotFound) {
		err = b.store.Update(ctx, func(tx phivault.StoreTx) error {
			var err error
			e, err = b.sealer.currentDEK(ctx, tx, b.keyID, "")
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("envelope: key %s: %w", b.keyID, err)
	}
	return e, nil
}

// seal encrypts pt for field of id under dek:
//
//	format (1 byte, 0x01) ‖ len8(key id) ‖ key id ‖ nonce (12 bytes) ‖ AES-GCM ciphertext ‖ tag (16 bytes)
//
// The key id names the DEK version, so a future rotation of the key can
// tell old values from new ones.
func (b *secretBox) seal(dek *keyEntry, id, field string, pt []byte) ([]byte, error) {
	if len(dek.id) > 255 {
		return nil, fmt.Errorf("envelope: seal %s: key id too long", b.what)
	}
	hdr := 1 + 1 + len(dek.id) + NonceSize
	buf := make([]byte, hdr, hdr+len(pt)+tagSize)
	buf[0] = formatV1
	buf[1] = byte(len(dek.id))
	copy(buf[2:], dek.id)
	nonce := buf[hdr-NonceSize : hdr]
	if _, err := io.ReadFull(b.sealer.rand, nonce); err != nil {
		return nil, fmt.Errorf("envelope: seal %s: nonce: %w", b.what, err)
	}
	return dek.aead.Seal(buf, nonce, pt, b.appendAD(nil, id, field, dek.id)), nil
}

// open decrypts a value made by seal for field of id. nil or empty opens
// to nil. Anything that does not authenticate returns an error wrapping
// phivault.ErrIntegrity.
func (b *secretBox) open(ctx context.Context, id, field string, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	if len(sealed) < 2 || sealed[0] != formatV1 || len(sealed) < 2+int(sealed[1])+NonceSize+tagSize {
		return nil, b.error("malformed")
	}
	keyID := string(sealed[2 : 2+sealed[1]])
	if base, _, ok := phivault.ParseKeyVersionID(keyID); !ok || base != b.keyID {
		return nil, b.error("not sealed under its key")
	}
	hdr := 2 + len(keyID) + NonceSize
	nonce, ct := sealed[hdr-NonceSize:hdr], sealed[hdr:]
	ad := b.appendAD(nil, id, field, keyID)

	gen := b.sealer.cache.generation()
	cached := b.sealer.cache.get(keyID)
	if cached != nil && cached.aead != nil {
		if pt, err := cached.aead.Open(nil, nonce, ct, ad); err == nil {
			return pt, nil
		}
	}
	// Not cached, or the cached key did not open it: read the key row (it
	// may have changed) and try once more.
	var e *keyEntry
	err := b.store.View(ctx, func(tx phivault.StoreTx) error {
		wk, err := tx.Key(ctx, keyID)
		if errors.Is(err, phivault.ErrNotFound) {
			return b.error("key does not exist")
		} else if err != nil {
			return fmt.Errorf("envelope: key %s: %w", keyID, err)
		}
		if cached != nil && cached.aead != nil && cached.matches(wk) {
			return b.error("authentication failed")
		}
		e, err = b.sealer.unwrapDEK(ctx, wk, nil, gen)
		return err
	})
	if err != nil {
		return nil, err
	}
	pt, err := e.aead.Open(nil, nonce, ct, ad)
	if err != nil {
		return nil, b.error("authentication failed")
	}
	return pt, nil
}

// appendAD appends the additional data of a sealed value to buf:
//
//	ad prefix (e.g. "phivault account credential") ‖ 0x01 ‖ len32(id) ‖ id ‖
//	len32(field) ‖ field ‖ len32(key id) ‖ key id
func (b *secretBox) appendAD(buf []byte, id, field, keyID string) []byte {
	buf = append(buf, b.ad...)
	buf = append(buf, formatV1)
	buf = appendString(buf, id)
	buf = appendString(buf, field)
	return appendString(buf, keyID)
}

// error wraps phivault.ErrIntegrity with a detail for operators. The
// detail never contains data or key material.
func (b *secretBox) error(detail string) error {
	return fmt.Errorf("envelope: open %s: %s: %w", b.what, detail, phivault.ErrIntegrity)
}
