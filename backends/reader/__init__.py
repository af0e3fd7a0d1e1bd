"""The embedded offline reader: PP-OCR plus an extractive answering layer that speaks the zoom protocol."""

from .backend import UNKNOWN, ReaderBackend
from .colours import PALETTE
from .ocr import OcrEngine, TextLine
from .questions import Query, parse_question

__all__ = ["PALETTE", "UNKNOWN", "OcrEngine", "Query", "ReaderBackend", "TextLine", "parse_question"]
