"""What commands print: status, reports, charts, exports, forensics; pure functions of state."""
