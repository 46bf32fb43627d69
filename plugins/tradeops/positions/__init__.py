"""The trading book's end of day: closing every position through the platform API and verifying the book is flat
(:class:`~tradeops.positions.operators.ClosePositionsOperator`)."""
