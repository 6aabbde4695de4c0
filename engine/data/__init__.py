"""Market data: the shipped data set (`build`, reading ../shared only there), the instrument table
(`instruments`), and importing a user's own CSV bars (`importer`)."""
