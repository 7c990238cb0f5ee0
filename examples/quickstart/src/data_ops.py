"""The user's existing code: unchanged by orchestration."""
import urllib.request


def fetch_data(url: str) -> str:
    """Fetch data from URL"""
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode("utf-8")


def summarize_data(text: str) -> dict:
    """Compute summary statistics"""
    lines = text.split("\n")
    return {
        "total_chars": len(text),
        "total_lines": len(lines),
        "non_empty_lines": len([line for line in lines if line.strip()]),
    }
