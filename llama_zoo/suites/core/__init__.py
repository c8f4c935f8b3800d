"""What every suite shares: the suite protocol (`base`), statistics, sample records, prompt
rendering and classifier metrics."""
