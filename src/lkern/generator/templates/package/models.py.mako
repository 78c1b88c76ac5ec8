"""${whose} tables."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lkern.platform.db import Model, service_metadata
from lkern.platform.models import ResourceMixin
% if files:
from lkern.platform.storage.files import FilesList, files_column
% endif
from lkern.platform.trigram import trigram_indexes


class ${Title}Base(Model):
    __abstract__ = True
    metadata = service_metadata()


#: Searched with ILIKE '%text%'. On PostgreSQL each has a trigram index, so a
#: search reads the matching rows instead of the whole table.
% if prefix:
SEARCHED_COLUMNS = ("code", "name")
% else:
SEARCHED_COLUMNS = ("name",)
% endif


class ${Noun}(ResourceMixin, ${Title}Base):
    __tablename__ = "${name}"
    __table_args__ = trigram_indexes("${name}", SEARCHED_COLUMNS)

% if prefix:
    code: Mapped[str] = mapped_column(String(32), unique=True)
% endif
    name: Mapped[str] = mapped_column(String(255), index=True)
    notes: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True, index=True)
% if files:
    attachments: FilesList = files_column()
% endif
