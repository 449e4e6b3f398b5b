"""An email brand's layout (Courier's `brand`): the email's content between a header with the logo and a
footer with the sender's postal address and the unsubscribe link, in the brand's colours. Pure; the HTML
escapes every text it takes (colours are checked hex at the brand's creation)."""

from __future__ import annotations

from html import escape
from typing import Any


def wrap(brand: dict[str, Any], text: str, html: str | None, unsubscribe_url: str | None) -> tuple[str, str]:
    """The text and HTML parts, branded: the HTML part wraps the campaign's HTML (or its text, as paragraphs)."""
    colours = brand.get("colours") or {}
    primary = colours.get("primary", "#1A73E8")
    background, foreground = colours.get("background", "#FFFFFF"), colours.get("text", "#202124")
    paragraphs = "".join(f"<p>{escape(part).replace(chr(10), '<br>')}</p>" for part in text.split("\n\n") if part)
    content = html if html else paragraphs
    logo = (
        f'<img src="{escape(brand["logo_url"])}" alt="{escape(brand["name"])}" style="max-height:48px">'
        if brand.get("logo_url")
        else f'<strong style="font-size:20px">{escape(brand["name"])}</strong>'
    )
    unsubscribe = brand.get("unsubscribe_text") or "Unsubscribe"
    link = (
        f'<a href="{escape(unsubscribe_url)}" style="color:{primary}">{escape(unsubscribe)}</a>'
        if unsubscribe_url
        else ""
    )
    footer = "<br>".join(
        part for part in (escape(brand.get("footer_text") or ""), escape(brand["postal_address"]), link) if part
    )
    branded_html = (
        "<!DOCTYPE html><html><body "
        f'style="margin:0;padding:0;background:{background};color:{foreground};font-family:Arial,Helvetica,sans-serif">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="max-width:600px">'
        f'<tr><td style="padding:24px 16px;border-bottom:3px solid {primary}">{logo}</td></tr>'
        f'<tr><td style="padding:24px 16px">{content}</td></tr>'
        f'<tr><td style="padding:16px;font-size:12px;line-height:18px;border-top:1px solid #DADCE0">{footer}</td></tr>'
        "</table></td></tr></table></body></html>"
    )
    lines = [
        brand.get("footer_text"),
        brand["postal_address"],
        f"{unsubscribe}: {unsubscribe_url}" if unsubscribe_url else None,
    ]
    branded_text = text.rstrip() + "\n\n--\n" + "\n".join(line for line in lines if line)
    return branded_text, branded_html
