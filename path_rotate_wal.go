package sms

import (
	"context"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/mitchellh/mapstructure"
)

// pendingWAL reports whether the write-ahead log holds an entry of kind.
func pendingWAL(ctx context.Context, s logical.Storage, kind string) (bool, error) {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		e, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return false, err
		}
		if e != nil && e.Kind == kind {
			return true, nil
		}
	}
	return false, nil
}

// walRollback is called by Vault for write-ahead log entries older than
// walRollbackMinAge: rotations a crash interrupted.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data any) error {
	if !b.writeSafe() {
		// A performance standby or secondary: its view of the config may
		// lag, and only the node that rotates may undo. The entry stays.
		return logical.ErrReadOnly
	}
	switch kind {
	case walKindAccessKey:
		var wal accessKeyWAL
		if err := mapstructure.Decode(data, &wal); err != nil {
			return err
		}
		b.configMu.Lock()
		defer b.configMu.Unlock()
		_, err := b.rollbackAccessKey(ctx, req.Storage, wal)
		return err
	case walKindPassword:
		var wal passwordWAL
		if err := mapstructure.Decode(data, &wal); err != nil {
			return err
		}
		return b.rollbackPassword(ctx, req.Storage, wal)
	}
	return nil // an unknown kind: nothing this version can undo
}
