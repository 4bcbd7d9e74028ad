"""Contacts in the browser: search, a tag added on the profile, the CSV export downloaded and
imported back with a new row (preview first), GDPR export and erasure with confirmation."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.browser.conftest import Browsers, WebApp


def test_search_tag_and_csv_round_trip(browsers: Browsers, web_app: WebApp, tmp_path: Path) -> None:
    wa = web_app.whatsapp("hello, it's Tamar", name="Tamar Roundtrip")
    page = browsers.signed_in("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Contacts").click()
    page.get_by_label("Search").fill("Roundtrip")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#contacts-table tbody tr")).to_have_count(1)
    web_app.shot(page, "contacts")
    page.get_by_role("link", name="Tamar Roundtrip").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Tamar Roundtrip")
    page.get_by_placeholder("Add a tag").fill("csv-vip")
    page.get_by_role("button", name="Add tag").click()
    expect(page.locator("#contact-tags")).to_contain_text("csv-vip")
    page.get_by_label("Field name").fill("plan")
    page.get_by_label("Value").fill("gold")
    page.get_by_role("button", name="Save field").click()
    expect(page.locator("#fields-table")).to_contain_text("gold")
    web_app.shot(page, "contact-profile")

    page.goto("/contacts?tag=csv-vip")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    table = list(csv.DictReader(io.StringIO(exported)))
    assert [(r["external_id"], r["name"], r["tags"], r["field.plan"]) for r in table] == \
        [(wa, "Tamar Roundtrip", "csv-vip", "gold")]

    changed = io.StringIO()
    writer = csv.DictWriter(changed, fieldnames=list(table[0]))
    writer.writeheader()
    writer.writerow({**table[0], "tags": "csv-vip;imported"})
    writer.writerow({**{k: "" for k in table[0]}, "channel": "whatsapp", "external_id": "995599001122",
                     "name": "Imported Person", "tags": "csv-vip"})
    upload = tmp_path / "contacts.csv"
    upload.write_text(changed.getvalue(), encoding="utf-8")
    page.get_by_role("button", name="Import CSV").click()
    page.get_by_label("CSV file", exact=True).set_input_files(str(upload))
    page.get_by_role("button", name="Preview import").click()
    expect(page.locator("#import-result")).to_contain_text("1 new")
    expect(page.locator("#import-result")).to_contain_text("1 updated")
    web_app.shot(page, "contacts-import-preview")
    page.get_by_role("button", name="Import 2 contacts").click()
    expect(page.locator("#import-result")).to_contain_text("Imported: 1 new, 1 updated")
    page.goto("/contacts?tag=imported")
    expect(page.get_by_role("link", name="Tamar Roundtrip")).to_be_visible()
    page.goto("/contacts?tag=csv-vip")
    expect(page.get_by_role("link", name="Imported Person")).to_be_visible()


def test_an_import_with_errors_shows_them_and_imports_nothing(
    browsers: Browsers, web_app: WebApp, tmp_path: Path
) -> None:
    upload = tmp_path / "bad.csv"
    upload.write_text("channel,external_id,name,subscribed\nwhatsapp,995500000001,Good Row,yes\n"
                      "telegram,1,Bad Channel,\nwhatsapp,995500000002,,perhaps\n", encoding="utf-8")
    page = browsers.signed_in("admin")
    page.goto("/contacts")
    page.get_by_role("button", name="Import CSV").click()
    page.get_by_label("CSV file", exact=True).set_input_files(str(upload))
    page.get_by_role("button", name="Preview import").click()
    errors = page.locator("#import-errors tbody tr")
    expect(errors).to_have_count(2)
    expect(errors.nth(0)).to_contain_text("must be messenger, instagram or whatsapp")
    expect(errors.nth(1)).to_contain_text("must be true or false")
    expect(page.get_by_role("button", name="Import 3 contacts")).to_have_count(0)
    assert web_app.appliance.api.get("/api/v1/contacts", params={"q": "Good Row"}).json()["items"] == []


def test_gdpr_export_and_erasure(browsers: Browsers, web_app: WebApp) -> None:
    wa = web_app.whatsapp("please delete my data", name="Erase Me")
    contact = web_app.contact_of(wa)
    page = browsers.signed_in("agent")
    page.goto(f"/contacts/{contact['id']}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download their data (JSON)").click()
    assert "please delete my data" in Path(download.value.path()).read_text()
    page.get_by_role("button", name="Erase contact…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Type ERASE to confirm").fill("erase")
    dialog.get_by_role("button", name="Erase permanently").click()
    expect(dialog).to_be_visible()  # lowercase is not a confirmation
    assert web_app.appliance.api.get(f"/api/v1/contacts/{contact['id']}").status_code == 200
    dialog.get_by_label("Type ERASE to confirm").fill("ERASE")
    dialog.get_by_role("button", name="Erase permanently").click()
    expect(page).to_have_url(f"{web_app.url}/contacts?erased=1")
    expect(page.get_by_text("The contact was erased")).to_be_visible()
    assert web_app.appliance.api.get(f"/api/v1/contacts/{contact['id']}").status_code == 404


def test_an_objection_unsubscribes_and_stops_the_bot(browsers: Browsers, web_app: WebApp) -> None:
    wa = web_app.whatsapp("stop using my data for marketing", name="Objecting Olek")
    contact = web_app.contact_of(wa)
    page = browsers.signed_in("agent")
    page.goto(f"/contacts/{contact['id']}")
    page.get_by_role("button", name="Record an objection").click()
    expect(page).to_have_url(f"{web_app.url}/contacts/{contact['id']}?objected=1")
    expect(page.get_by_role("status").filter(has_text="Objection recorded")).to_be_visible()
    expect(page.locator("#sub-state")).to_contain_text("Unsubscribed")
    assert web_app.appliance.api.get(f"/api/v1/contacts/{contact['id']}").json()["subscribed"] is False
