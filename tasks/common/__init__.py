"""IO shared by every flow (loading calendars, ...): sessions in, frozen typed values out."""
