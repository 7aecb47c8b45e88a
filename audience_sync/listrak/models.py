"""Pydantic models of the parts of Listrak's published Email API (Swagger 2.0) this project uses.

Field names are the wire names. Request models forbid unknown keys so a test can check every
body the client sends; response models ignore unknown keys (the API may add fields).
"""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

IMPORT_TYPES = (
    "AddSubscribers",
    "AddSubscribersAndSegmentationData",
    "RemoveSubscribers",
    "UpdateSubscribers",
)
SEGMENTATION_IMPORT_TYPES = ("Update", "Append", "Overwrite")
FILE_COLUMN_TYPES = ("Email", "SegmentationField", "Event", "ExternalContactID")
FIELD_DATA_TYPES = (
    "Text",
    "Numeric",
    "RadioButton",
    "CheckBox",
    "CommentArea",
    "Date",
    "ContentBlock",
)
CHECKBOX_VALUES = ("on", "off")

ImportType = Literal[
    "AddSubscribers", "AddSubscribersAndSegmentationData", "RemoveSubscribers", "UpdateSubscribers"
]
SegmentationImportType = Literal["Update", "Append", "Overwrite"]
FileColumnType = Literal["Email", "SegmentationField", "Event", "ExternalContactID"]
FieldDataType = Literal[
    "Text", "Numeric", "RadioButton", "CheckBox", "CommentArea", "Date", "ContentBlock"
]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- requests -------------------------------------------------------------------------------


class ImportFileMapping(RequestModel):
    fileColumn: int = Field(ge=0)
    fileColumnType: FileColumnType
    segmentationFieldId: int | None = None
    defaultValue: str | None = None


class ImportFile(RequestModel):
    fileName: str = Field(min_length=1)
    fileDelimiter: str = Field(min_length=1)
    fileStream: str
    fileMappings: list[ImportFileMapping] = Field(min_length=1)
    importType: ImportType
    segmentationImportType: SegmentationImportType
    hasColumnNames: bool | None = None
    textQualifier: str | None = None
    suppressEmailNotifications: bool | None = None
    triggerJourney: bool | None = None
    includeUnsubscribed: bool | None = None


class ContactSegmentationFieldValue(RequestModel):
    segmentationFieldId: int
    value: str


class ContactSegmentationFieldValues(RequestModel):
    emailAddress: str = Field(min_length=1)
    segmentationFieldValues: list[ContactSegmentationFieldValue]


class SegmentationFieldGroupCreate(RequestModel):
    segmentationFieldGroupName: str = Field(min_length=1)
    position: int


class SegmentationFieldCreate(RequestModel):
    segmentationFieldName: str = Field(min_length=1)
    dataType: FieldDataType
    maxLength: int
    position: int
    segmentationFieldGroupId: int | None = None


# --- responses ------------------------------------------------------------------------------


class Envelope(ResponseModel):
    status: int


class ErrorBody(Envelope):
    error: str | None = None
    message: str | None = None


class ResourceCreated(Envelope):
    resourceId: str


class Resource(Envelope, Generic[T]):
    data: T


class Collection(Envelope, Generic[T]):
    data: list[T]
    nextPageCursor: str | None = None


class TokenResponse(ResponseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = 900


class ListInfo(ResponseModel):
    listId: int
    listName: str | None = None


class SegmentationFieldGroup(ResponseModel):
    segmentationFieldGroupId: int
    segmentationFieldGroupName: str
    position: int | None = None


class SegmentationField(ResponseModel):
    segmentationFieldId: int
    segmentationFieldName: str
    segmentationFieldGroupId: int | None = None
    dataType: str
    maxLength: int | None = None
    position: int | None = None


class SegmentationFieldValue(ResponseModel):
    segmentationFieldId: int
    value: str | None = None
    segmentationFieldGroupId: int | None = None


class Contact(ResponseModel):
    emailAddress: str
    subscriptionState: str | None = None
    segmentationFieldValues: list[SegmentationFieldValue] = []


class ListImport(ResponseModel):
    importFileId: int
    importFileName: str | None = None
    importDate: str | None = None


class ListImportStatus(ResponseModel):
    startDate: str | None = None
    endDate: str | None = None
    status: str | None = None


class ListImportSummary(ResponseModel):
    alreadySubscribedCount: int = 0
    alreadyUnsubscribedCount: int = 0
    bannedCount: int = 0
    invalidEmailCount: int = 0
    previouslyUnsubscribedCount: int = 0
    processedCount: int = 0
    skippedCount: int = 0
    subscribedCount: int = 0
    suppressedCount: int = 0
    unsubscribedCount: int = 0

    def rejected_count(self) -> int:
        """Rows Listrak did not apply, as far as the summary tells."""
        return (
            self.skippedCount
            + self.invalidEmailCount
            + self.bannedCount
            + self.suppressedCount
            + self.previouslyUnsubscribedCount
        )


class ListImportContact(ResponseModel):
    emailAddress: str
    importResult: str | None = None
