"""${Title} as the platform sees it."""

from pathlib import Path

from lkern.events.${name} import (
% if files:
    ${Noun}AttachmentAdded,
    ${Noun}AttachmentRemoved,
% endif
    ${Noun}Created,
    ${Noun}Deleted,
% if files:
    ${Noun}DeletionFailed,
% endif
    ${Noun}PermanentlyDeleted,
    ${Noun}Restored,
    ${Noun}Updated,
)
from lkern.platform.service import ServiceDefinition
% if grpc:
from lkern.${name}.grpc import grpc_services
% endif
from lkern.${name}.models import ${Title}Base
% if files:
from lkern.${name}.service import ATTACHMENTS
% endif
from lkern.${name}.views import router

${NAME} = ServiceDefinition(
    name="${name}",
    code="${code}",
    title="${Title}",
    description="${description}",
    version="0.1.0",
    rest_port=${port},
% if grpc:
    grpc_port=${grpc_port},
% endif
    metadata=${Title}Base.metadata,
    routers=[router],
    migrations_dir=Path(__file__).parent / "migrations",
% if grpc:
    grpc_services=grpc_services,
% endif
% if files:
    file_slots=[ATTACHMENTS],
% endif
% if prefix:
    issues_codes=True,
% endif
    produces=[
        ${Noun}Created,
        ${Noun}Updated,
        ${Noun}Deleted,
        ${Noun}Restored,
        ${Noun}PermanentlyDeleted,
% if files:
        ${Noun}DeletionFailed,
        ${Noun}AttachmentAdded,
        ${Noun}AttachmentRemoved,
% endif
    ],
)
