"""One audited way to decrypt a stored credential, for direct reads and alias resolution."""

from __future__ import annotations

from kernel.errors import Internal
from services.secrets.audit import Auditor, Operation, Outcome, Reader
from services.secrets.cipher import Cipher, Opened, SealError
from services.secrets.store import CredentialRow


async def open_credential(
    cipher: Cipher, auditor: Auditor, row: CredentialRow, reader: Reader, operation: Operation
) -> Opened:
    """The decrypted data, audited (`ok` or `decrypt_error`); the audit row never holds the value.

    Raises:
        Internal: the stored value cannot be decrypted — the message names the credential.
        Unavailable: the audit write failed and the audit is required.
    """
    try:
        opened = await cipher.open(row.data_encrypted)
    except SealError as exc:
        await auditor.record(
            reader,
            credential=row.name,
            operation=operation,
            outcome=Outcome.DECRYPT_ERROR,
            kek_version=exc.kek_version,
        )
        raise Internal(f"Cannot decrypt credential '{row.name}': {exc}") from exc
    await auditor.record(
        reader, credential=row.name, operation=operation, outcome=Outcome.OK, kek_version=opened.kek_version
    )
    return opened
