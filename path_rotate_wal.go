package sms

import (
	"context"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/mitchellh/mapstructure"
)

// walRollback is called by Vault for write-ahead log entries older than
// walRollbackMinAge: rotations a crash interrupted, and rotations whose
// outcome upstream is unknown (see path_rotate_settle.go). A nil return
// lets Vault delete the entry; an error keeps it for the next rollback.
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
		if err := b.settleDue(wal.settleState); err != nil {
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
		return b.settlePassword(ctx, req.Storage, wal)
	}
	return nil // an unknown kind: nothing this version can undo
}
